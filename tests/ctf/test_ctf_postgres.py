"""The referee's database on a real PostgreSQL server (PETRIDISH_TEST_STORE_URL names one;
`.ci/run` starts it): the API's whole submission, scoring and leaderboard flow, unchanged, on a
fresh database. Skipped without a server."""
from sqlalchemy import create_engine, text

from test_ctf_api import test_submission_routes_and_leaderboards as submission_flow


def test_the_referee_runs_on_postgresql(pg_url, make_client):   # the database outlives the app
    submission_flow(lambda **settings: make_client(db_url=pg_url, **settings))
    engine = create_engine(pg_url)
    with engine.connect() as c:                                   # the rows are in PostgreSQL
        counts = {t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                  for t in ("tasks", "competitors", "submissions")}
    engine.dispose()
    assert counts["tasks"] == 1 and counts["competitors"] == 2 and counts["submissions"] >= 5, counts
