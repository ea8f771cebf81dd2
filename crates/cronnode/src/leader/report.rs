//! What the machine reports, as log lines and metrics. The machine never logs; every line
//! about a term is written here, from an [`Event`]. Must not decide anything.

use leader_term::{Event, Leader, TermEnd};

use crate::metrics::{FireOutcomeLabel, Metrics};

/// Logs and counts every event the machine has to report. `not_fired`: fires the driver
/// refused because their route is missing, which the machine reports among the invalid ones;
/// counted as `route_missing` instead.
pub(super) fn events(machine: &mut Leader, node: &str, metrics: &Metrics, not_fired: &mut u64) {
    while let Some(event) = machine.poll_event() {
        event_line(&event, node, metrics, not_fired);
    }
}

fn event_line(event: &Event, node: &str, metrics: &Metrics, not_fired: &mut u64) {
    match event {
        Event::TermStarted { token, since } => {
            tracing::info!(%node, token, %since, "became leader");
            metrics.leadership(true);
        }
        Event::TermEnded { token, end } => {
            metrics.leadership(false);
            metrics.fence_blocked(false);
            match end {
                TermEnd::Lost => tracing::warn!(token, "lost leadership: stopped enqueueing"),
                TermEnd::Deposed { fence } => tracing::error!(
                    token,
                    fence,
                    "deposed: the Redis fence ({fence}) is above this term's token; a newer leader exists. Stopped enqueueing; waiting for the election to notice"
                ),
            }
        }
        Event::FenceBlocked { token, fence } => {
            tracing::error!(
                token,
                fence,
                "FENCE BLOCKED: the Redis fence ({fence}) is above this leader's token ({token}). \
                 Consul's indexes went backwards: it was probably rebuilt from scratch. Nothing \
                 will be enqueued until an operator, having stopped every node of the old \
                 cluster, runs `cronnode fence reset --yes`"
            );
            metrics.fence_blocked(true);
        }
        Event::FenceReset { token } => {
            tracing::warn!(
                token,
                "fence reset to this leader's token by an operator; scheduling starts"
            );
            metrics.fence_blocked(false);
        }
        Event::TakenOver {
            slots,
            fires,
            first,
            last,
        } => {
            tracing::info!(slots, fires, %first, %last, "releasing the slots staged by an earlier leader")
        }
        Event::CatchUp {
            term_start,
            jobs,
            jobs_behind,
            planned,
            skipped,
        } => {
            metrics.catchup(*planned, *skipped);
            // One line per term start, and per later catch-up only when something was missed.
            if *term_start || *jobs_behind > 0 {
                tracing::info!(
                    term_start,
                    jobs,
                    jobs_behind,
                    planned,
                    skipped,
                    "catch-up planned"
                );
            }
        }
        Event::Sent {
            op,
            enqueued,
            duplicate,
            invalid,
        } => {
            metrics.fires(FireOutcomeLabel::Enqueued, *enqueued);
            metrics.fires(FireOutcomeLabel::Duplicate, *duplicate);
            let missing = (*not_fired).min(*invalid);
            *not_fired -= missing;
            metrics.fires(FireOutcomeLabel::RouteMissing, missing);
            metrics.fires(FireOutcomeLabel::Invalid, *invalid - missing);
            tracing::debug!(op = op.name(), enqueued, duplicate, invalid, "sent");
        }
        Event::Fenced { fires } => metrics.fires(FireOutcomeLabel::Fenced, *fires),
        Event::Lateness { seconds, tasks } => {
            for _ in 0..*tasks {
                metrics.lateness(*seconds);
            }
        }
        Event::Released { slots, tasks } => {
            tracing::debug!(slots, tasks, "released staged tasks");
        }
        Event::Amended {
            withdrawn,
            restaged,
            not_staged,
        } => {
            metrics.amended(*withdrawn, *restaged);
            tracing::info!(
                withdrawn,
                restaged,
                not_staged,
                "staged tasks of changed jobs withdrawn or restaged"
            );
        }
        Event::Dropped { fires } => {
            metrics.fires(FireOutcomeLabel::Dropped, *fires);
            tracing::debug!(
                fires,
                "fires of paused, deleted or changed jobs dropped before sending"
            );
        }
        Event::Invalid { job } => {
            tracing::debug!(%job, "a fire of a job that cannot become a task was dropped")
        }
        Event::CallFailed {
            op,
            error,
            retry_in,
        } => {
            metrics.redis_error(op.name());
            tracing::warn!(op = op.name(), %error, "Redis call failed; the same call again in {retry_in:?}");
        }
    }
}
