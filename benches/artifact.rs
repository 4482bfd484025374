//! Artifacts and fan-out (issue 18):
//! 1. Storing a 1 GiB artifact (pack into the content-addressed store: read, hash,
//!    write, fsync, rename) against `sha256sum FILE` followed by `cp FILE DEST` of the
//!    same file, interleaved, median of several runs each (target: ratio <= 1.3).
//! 2. Fan-out of one release to 100 stations on the in-process engine: time from the
//!    release being ready to every station running it, and the process's peak memory.
//!
//! Run: cargo bench --bench artifact   (or scripts/bench_artifacts.sh)
//! `ARTIFACT_MB` (default 1024) and `RUNS` (default 5) change the sizes.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pipedeck::api::EngineClient;
use pipedeck::domain::Event;
use pipedeck::domain::release::ReleaseStatus;
use pipedeck::store::artifacts::ArtifactStore;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn store_vs_peer(tmp: &Path) {
    let mb = env_or("ARTIFACT_MB", 1024);
    let runs = env_or("RUNS", 5);
    let ws = tmp.join("ws");
    std::fs::create_dir_all(ws.join("dist")).unwrap();
    let file = ws.join("dist/blob");
    {
        // Incompressible content, written once.
        let mut f = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..mb {
            for chunk in buf.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes());
            }
            f.write_all(&buf).unwrap();
        }
        f.flush().unwrap();
    }
    let (mut ours, mut peer) = (Vec::new(), Vec::new());
    for i in 0..runs {
        // A fresh store each time: the pack is stored, not found already there.
        let data = tmp.join(format!("data{i}"));
        let t = Instant::now();
        let p = ArtifactStore::new(&data)
            .pack(&ws, &["dist/**".into()])
            .unwrap();
        ours.push(t.elapsed());
        assert!(!p.shared);
        std::fs::remove_dir_all(&data).unwrap();

        let dest = tmp.join(format!("copy{i}"));
        let t = Instant::now();
        let sum = Command::new("sha256sum").arg(&file).output().unwrap();
        assert!(sum.status.success());
        let cp = Command::new("cp").arg(&file).arg(&dest).status().unwrap();
        assert!(cp.success());
        peer.push(t.elapsed());
        std::fs::remove_file(&dest).unwrap();
    }
    let (o, p) = (median(ours.clone()), median(peer.clone()));
    println!("storing a {mb} MiB artifact, {runs} interleaved runs each:");
    println!(
        "  pipedeck pack (hash + tar + fsync + rename): median {:.3} s  {ours:.2?}",
        o.as_secs_f64()
    );
    println!(
        "  sha256sum + cp:                             median {:.3} s  {peer:.2?}",
        p.as_secs_f64()
    );
    println!(
        "  ratio {:.2}  (target <= 1.30)",
        o.as_secs_f64() / p.as_secs_f64()
    );
    std::fs::remove_file(&file).unwrap();
}

async fn fan_out(tmp: &Path) {
    let n = env_or("STATIONS", 100);
    let dir = tmp.join("fanout");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/README"), "bench\n").unwrap();
    let mut toml = String::from(
        r#"
[services.web]
repo_seed = "src"
artifact = ["dist/**"]
[[services.web.steps]]
name = "build"
run = "mkdir -p dist && for i in $(seq 1 50); do head -c 20000 /dev/urandom > dist/f$i; done"
"#,
    );
    for i in 0..n {
        toml.push_str(&format!(
            "[stations.s{i}]\nservice = \"web\"\ndir = \"stations/s{i}\"\n"
        ));
    }
    std::fs::write(dir.join("pipedeck.toml"), &toml).unwrap();
    let project = pipedeck::config::parse_project(&dir.join("pipedeck.toml"), &toml).unwrap();
    let (h, _task) = pipedeck::engine::start(project, &dir.join("data"))
        .await
        .unwrap();
    let mut rx = h.subscribe();
    let rss_before = status_kb("VmRSS:");
    h.trigger(pipedeck::engine::TriggerRequest {
        service: "web".into(),
        branch: None,
        commit: None,
        allow_older: false,
    })
    .await
    .unwrap();
    let mut ready_at = None;
    let mut id = 0;
    let mut switched = 0;
    let bound = tokio::time::sleep(Duration::from_secs(600));
    tokio::pin!(bound);
    while switched < n {
        let e = tokio::select! {
            e = rx.recv() => e,
            _ = &mut bound => panic!("the fan-out did not end in 10 minutes"),
        };
        match e {
            Ok(Event::Release { release }) if release.status == ReleaseStatus::Ready => {
                ready_at = Some(Instant::now());
                id = release.id;
            }
            Ok(Event::Station { current, .. }) if current == Some(id) && id != 0 => switched += 1,
            _ => {}
        }
    }
    let took = ready_at.unwrap().elapsed();
    println!("fan-out of one release (50 files, ~1 MB) to {n} stations:");
    println!(
        "  {:.3} s from ready to every station switched; process RSS {} MiB before, peak {} MiB",
        took.as_secs_f64(),
        rss_before / 1024,
        status_kb("VmHWM:") / 1024
    );
}

fn main() {
    let tmp =
        tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| "/tmp".into())).unwrap();
    if std::env::var("SKIP_STORE").is_err() {
        store_vs_peer(tmp.path());
    }
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(fan_out(tmp.path()));
}
