//! Puts one Sieve script into many users' partitions and makes it their active script, on
//! the data dir of a stopped server: the hook for measuring LMTP delivery with a script
//! active for every recipient (docs/loadtest.md, "Sieve at delivery").
//!
//! ```text
//! cargo run --release --example sieve_install -- DATA_DIR SCRIPT_FILE USER_PATTERN FIRST COUNT
//! cargo run --release --example sieve_install -- /srv/ringmail examples/typical.sieve 'user%d' 1 1000
//! ```
//!
//! The script is checked with the `[sieve]` limits first; each user gets it as "bench".

use std::path::PathBuf;

use ringmail::config::Config;
use ringmail::server::lock::DataDirLock;
use ringmail::server::partition::partition_of;
use ringmail::server::partitions::Partitions;
use ringmail::store::Partition;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, script, pattern, first, count] = args.as_slice() else {
        return Err("usage: sieve_install DATA_DIR SCRIPT_FILE USER_PATTERN FIRST COUNT".into());
    };
    let data = PathBuf::from(data);
    let first: u32 = first.parse().map_err(|e| format!("FIRST: {e}"))?;
    let count: u32 = count.parse().map_err(|e| format!("COUNT: {e}"))?;
    let source = std::fs::read_to_string(script).map_err(|e| format!("{script}: {e}"))?;
    let config = Config::load(&data.join("ringmail.toml")).map_err(|e| e.to_string())?;
    let limits = ringmail::lmtp::sieve::limits(&config);
    ringmail::lmtp::sieve::Script::compile(&source, &limits)
        .map_err(|e| format!("{script}: {e}"))?;
    let _lock = DataDirLock::acquire(&data, "sieve_install")
        .map_err(|e| format!("{e}; stop the server first"))?;
    let pattern = pattern.clone();
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let partitions = Partitions::new(&data, config.store_options());
            for n in first..first.saturating_add(count) {
                let user = pattern.replace("%d", &n.to_string());
                let p = partition_of(&user, config.storage.partitions);
                let part: std::rc::Rc<Partition> = partitions
                    .user(p, &user, &config, None)
                    .await
                    .map_err(|e| format!("{user}: {e}"))?;
                part.put_script(&user, "bench", &source)
                    .await
                    .map_err(|e| format!("{user}: {e}"))?;
                part.activate_script(&user, Some("bench"))
                    .await
                    .map_err(|e| format!("{user}: {e}"))?;
            }
            partitions.close_all().await;
            println!("script \"bench\" active for {count} users");
            Ok::<(), String>(())
        })
        .map_err(|e| e.to_string())?
        .join()
        .map_err(|e| e.to_string())?
}
