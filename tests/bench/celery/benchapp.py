"""The Celery app of the peer benchmark: beat with the RedBeat scheduler, broker and schedule
store on the benchmark's Redis (BENCH_REDIS). Nothing runs the task: the benchmark's own
consumer pops the messages from the `celery` list, as it pops cronnode's tasks."""
import os

from celery import Celery

app = Celery("benchapp", broker=os.environ["BENCH_REDIS"])
app.conf.redbeat_redis_url = os.environ["BENCH_REDIS"]
app.conf.broker_connection_retry_on_startup = True
app.conf.timezone = "UTC"


@app.task(name="bench.ping")
def ping(job):
    """Never run here: only its messages are measured."""
    return job
