//! The store of a stopped server, opened in the tool's own process: a glommio executor on
//! the calling thread, the data-dir lock held so no server can start meanwhile, and every
//! partition checkpointed and closed at the end, as a server shutdown would.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use ringmail_config::Config;
use ringmail_runtime::partition::partition_of;
use ringmail_runtime::partitions::Partitions;
use ringmail_store::{Partition, StoreError};

use ringmail_runtime::lock::DataDirLock;

/// A stopped server's store, opened by a tool.
pub struct OfflineStore {
    config: Config,
    data_dir: PathBuf,
    partitions: Partitions,
}

impl OfflineStore {
    /// The config the data dir is served with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// `user`'s partition, with the user's INBOX and special-use folders made if new.
    pub async fn user(&self, user: &str) -> Result<Rc<Partition>, StoreError> {
        let p = partition_of(user, self.config.storage.partitions);
        self.partitions.user(p, user, &self.config, None).await
    }

    /// Partition `p` as it is (nothing created).
    pub async fn partition(&self, p: u32) -> Result<Rc<Partition>, StoreError> {
        self.partitions.get(p).await
    }

    /// `user`'s partition as it is (nothing created).
    pub async fn partition_of(&self, user: &str) -> Result<Rc<Partition>, StoreError> {
        self.partitions
            .get(partition_of(user, self.config.storage.partitions))
            .await
    }
}

/// Runs `work` against the store of the stopped server whose data dir is `data_dir`.
/// `what` names the tool in messages. Fails with one line when a server holds the data dir.
pub fn run<T, F, Fut>(config: &Config, data_dir: &Path, what: &str, work: F) -> Result<T, String>
where
    F: FnOnce(Rc<OfflineStore>) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    // A cluster node's data dir holds the partitions the map gives it, and which those are
    // is in etcd: a tool writing a stopped node's dir could write a partition another node
    // serves. Through a running node it reaches the user's owner (crate::forward).
    if config.cluster.enabled() {
        return Err(format!(
            "{what}: this data dir belongs to node {:?} of cluster {:?}: run the command \
             while the node runs (any node of the cluster passes it to the node serving the \
             user), not on a stopped node's data dir",
            config.cluster.node, config.cluster.name
        ));
    }
    let _lock =
        DataDirLock::acquire(data_dir, what).map_err(|e| format!("{e}; stop the server first"))?;
    ringmail_runtime::limits::raise_memlock()?;
    let executor = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("ringmail-tool")
        .make()
        .map_err(|e| format!("{what}: cannot start the I/O executor: {e}"))?;
    executor.run(async move {
        let store = Rc::new(OfflineStore {
            config: config.clone(),
            data_dir: data_dir.to_owned(),
            partitions: Partitions::new(data_dir, config.store_options()),
        });
        let result = work(store.clone()).await;
        store.partitions.close_all().await;
        result
    })
}
