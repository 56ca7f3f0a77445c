def test_tenancy_world_builds(alice, bob, charlie):
    assert alice.business.id != bob.business.id
    assert alice.raw_key.startswith("icmp_")
