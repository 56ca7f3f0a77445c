"""The scale benchmark's read paths answer, and its plan reading finds the scans that fail its goal."""

from __future__ import annotations

import pytest

from bench import bench_scale, scale_paths

PLAN = """Aggregate  (cost=80.72..80.73 rows=1 width=8) (actual time=6.162..6.165 rows=1 loops=1)
  ->  Limit  (cost=0.00..79.46 rows=101 width=16) (actual time=0.037..6.140 rows=101 loops=1)
        ->  Seq Scan on conversations_conversation  (cost=0.00..3800.00 rows=4830 width=16)
              Filter: (needs_human AND ((status)::text = 'open'::text))
        ->  Parallel Seq Scan on conversations_contact  (cost=0.00..2.50 rows=50 width=236)
        ->  Index Only Scan using conv_waiting on conversations_conversation  (cost=0.26..72.75 rows=20)
        ->  Index Scan Backward using message_conv_created on conversations_message u0  (cost=0.42..48.62)
        ->  Bitmap Index Scan on conv_ai_paused  (cost=0.00..8.44 rows=60 width=0)
Execution Time: 6.216 ms"""


def test_a_plans_scan_nodes_are_read_and_only_hot_table_seq_scans_count():
    assert bench_scale.plan_scans(PLAN) == [
        "Seq Scan on conversations_conversation",
        "Parallel Seq Scan on conversations_contact",
        "Index Only Scan using conv_waiting on conversations_conversation",
        "Index Scan Backward using message_conv_created on conversations_message",
        "Bitmap Index Scan on conv_ai_paused",
    ]
    assert bench_scale.plan_seq_scans(PLAN) == ["conversations_conversation"]
    assert bench_scale.plan_seq_scans(PLAN.replace("Seq Scan on conversations_conversation", "")) == []


@pytest.mark.django_db
def test_every_path_the_benchmark_measures_answers_200_for_its_client(alice, bob):
    clients = scale_paths.clients(alice.business.pk, alice.raw_key)
    endpoints = scale_paths.endpoints(alice.business.pk)
    assert {e.client for e in endpoints.values()} == {
        scale_paths.API,
        scale_paths.SUPERUSER,
        scale_paths.STAFF,
    }
    for label, endpoint in endpoints.items():
        response = clients[endpoint.client].get(endpoint.path)
        assert response.status_code == 200, (label, endpoint.path, response.status_code)
