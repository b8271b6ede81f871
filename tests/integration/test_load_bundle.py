import pytest
from drg.bundle import bundle_load

pytestmark = pytest.mark.django_db

def test_smoke(worked_bundle):
    r = bundle_load(path=worked_bundle)
    for k, v in r.files.items(): print(k, v)
    print(r.seconds, r.timings)
    r = bundle_load(path=worked_bundle)
    for k, v in r.files.items(): print(k, v)
