"""Writes N every-minute RedBeat schedules (`python load.py N`), named j0000000.., each sending
bench.ping(name): the same jobs as cronnode's peer run."""
import sys

from celery.schedules import crontab
from redbeat import RedBeatSchedulerEntry

from benchapp import app

n = int(sys.argv[1])
for i in range(n):
    name = f"j{i:07d}"
    RedBeatSchedulerEntry(name, "bench.ping", crontab(), args=[name], app=app).save()
print(f"saved {n} entries")
