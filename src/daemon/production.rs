//! The [`JobRunner`] the `halosync` binary runs.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use super::{Context, JobName, JobOutcome, JobRunner, prune};

/// The jobs of this build. Prune is complete; the sync jobs (pull, push,
/// reconcile, renew-subscriptions) are the sync engine's and the webhook
/// subscription manager's, which replace their arm of this runner when they
/// are wired in. Until then those jobs fail with a message saying so rather
/// than pretending to succeed.
pub fn production_jobs(context: &Context) -> Arc<dyn JobRunner> {
    Arc::new(ProductionJobs {
        context: context.clone(),
    })
}

struct ProductionJobs {
    context: Context,
}

impl JobRunner for ProductionJobs {
    fn run(&self, job: JobName, _stop: CancellationToken) -> BoxFuture<'static, JobOutcome> {
        match job {
            JobName::Prune => {
                let context = self.context.clone();
                async move { prune(&context).await }.boxed()
            }
            JobName::Pull | JobName::Push | JobName::Reconcile | JobName::RenewSubscriptions => {
                let outcome = JobOutcome::Failed {
                    error: format!("the {job} job is not available in this build"),
                };
                async move { outcome }.boxed()
            }
        }
    }
}
