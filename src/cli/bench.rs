//! `halosync bench`: runs the benchmark of [`crate::bench`], prints its
//! table and writes its JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::exit;
use super::table::render;
use crate::bench::{self, BenchOptions, BenchReport, Latencies, RequestFigures, Size};
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Technicians (each with a mailbox).
    #[arg(long, default_value_t = 200)]
    pub agents: usize,
    /// Events in each technician's calendar before the import.
    #[arg(long, default_value_t = 500)]
    pub events: usize,
    /// Exchange edits timed through the webhook path (Halo edits timed
    /// through the push schedule: a twentieth of this, at least 3).
    #[arg(long, default_value_t = 1000)]
    pub changes: usize,
    /// Latency the simulator adds to every request.
    #[arg(long, default_value_t = 20, value_name = "MS")]
    pub latency_ms: u64,
    /// A small world (4 × 25, 10 changes) that runs in seconds; overrides
    /// --agents, --events and --changes.
    #[arg(long)]
    pub quick: bool,
    /// Where to write the JSON report.
    #[arg(long, default_value = "bench.json", value_name = "PATH")]
    pub json: PathBuf,
    /// Directory for the run's database and logs (default: a new directory
    /// under /dev/shm, else the temporary directory; removed afterwards).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// Internal: run one phase in this process (the import, so that its
    /// peak memory is measured apart from the simulator's).
    #[arg(long, hide = true, value_enum)]
    pub phase: Option<Phase>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Phase {
    Import,
}

/// `halosync bench --phase import --config PATH`: one JSON line on stdout.
pub fn phase(config: &Config) -> ExitCode {
    super::block_on(async {
        match bench::import_phase(config).await {
            Ok(child) => match serde_json::to_string(&child) {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => failed(&e.to_string()),
            },
            Err(e) => failed(&e.to_string()),
        }
    })
}

fn failed(message: &str) -> ExitCode {
    eprintln!("halosync bench: {message}");
    ExitCode::from(exit::FAILURE)
}

pub fn run(args: &BenchArgs) -> ExitCode {
    let (size, changes, webhook_pace, push_pace) = if args.quick {
        (
            Size {
                agents: 4,
                events: 25,
            },
            10,
            Duration::from_millis(100),
            Duration::from_millis(300),
        )
    } else {
        (
            Size {
                agents: args.agents,
                events: args.events,
            },
            args.changes,
            Duration::from_millis(200),
            Duration::from_millis(500),
        )
    };
    if size.agents == 0 || size.events == 0 || changes == 0 {
        eprintln!("halosync bench: --agents, --events and --changes must be at least 1");
        return ExitCode::from(exit::CONFIG);
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return failed(&format!("cannot find the halosync binary: {e}")),
    };
    let (work_dir, temporary) = match &args.work_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            bench::default_work_root().join(format!("halosync-bench-{}", uuid::Uuid::new_v4())),
            true,
        ),
    };
    if let Err(e) = std::fs::create_dir_all(&work_dir) {
        return failed(&format!("{}: {e}", work_dir.display()));
    }
    let options = BenchOptions {
        size,
        webhook_changes: changes,
        webhook_pace,
        push_changes: (changes / 20).max(3),
        push_pace,
        latency_ms: args.latency_ms,
        work_dir: work_dir.clone(),
        exe,
    };
    let outcome = super::block_on(async {
        match bench::run(&options).await {
            Ok(report) => {
                print!("{}", table(&report));
                write_json(&args.json, &report)
            }
            Err(e) => failed(&e.to_string()),
        }
    });
    if temporary {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    outcome
}

fn write_json(path: &std::path::Path, report: &BenchReport) -> ExitCode {
    let text = match serde_json::to_string_pretty(report) {
        Ok(text) => text,
        Err(e) => return failed(&e.to_string()),
    };
    match std::fs::write(path, text + "\n") {
        Ok(()) => {
            println!("\nJSON written to {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => failed(&format!("{}: {e}", path.display())),
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn limit(requests: &RequestFigures) -> String {
    if requests.halo_limit_floor_s == 0 {
        "within it".into()
    } else {
        format!("≥ {}", seconds(requests.halo_limit_floor_s * 1000))
    }
}

fn latency(l: &Latencies) -> String {
    let ms = |v: Option<u64>| v.map_or_else(|| "-".into(), |v| format!("{v}"));
    format!(
        "p50 {} / p95 {} / p99 {} ms ({} of {} carried, one every {} ms)",
        ms(l.p50_ms),
        ms(l.p95_ms),
        ms(l.p99_ms),
        l.carried,
        l.changes,
        l.pace_ms
    )
}

/// The report as the table the README shows.
pub fn table(report: &BenchReport) -> String {
    let c = &report.conditions;
    let mut out = format!(
        "halosync bench: {} agents × {} events, {} ms per request, Graph 4 concurrent and 10,000 per 10 min per mailbox, \
         Halo 300 per 5 min recorded (not enforced); {} build, {} CPUs, database in {}\n\n",
        c.agents, c.events_per_agent, c.latency_ms, c.build, c.cpus, c.database_dir
    );
    let mib = |kb: Option<u64>| {
        kb.map_or_else(|| "-".into(), |kb| format!("{:.1} MiB", kb as f64 / 1024.0))
    };
    let i = &report.import;
    let row = |phase: &str, wall: String, r: &RequestFigures, note: String| {
        vec![
            phase.to_string(),
            wall,
            match r.graph_batched_items {
                0 => r.graph.to_string(),
                items => format!("{} ({items} in $batch)", r.graph),
            },
            r.halo.to_string(),
            limit(r),
            note,
        ]
    };
    let (s, b, ch) = (&report.steady, &report.baseline, &report.churn);
    let mut rows = vec![
        row(
            "import (latency not slept)",
            seconds(i.wall_ms),
            &i.requests,
            format!(
                "{} events, {:.0} events/s, {} at {} ms latency, peak RSS {}",
                i.events,
                i.events_per_s,
                seconds(i.projected_wall_ms_at_latency),
                c.latency_ms,
                mib(i.peak_rss_kb)
            ),
        ),
        row(
            "steady: halosync",
            seconds(s.cycle.wall_ms),
            &s.cycle.requests,
            format!(
                "{:.2} × the minimum ({} Graph with $batch + {} Halo), {} writes",
                s.ratio_to_minimum, s.minimum_graph, s.minimum_halo, s.cycle.run.writes
            ),
        ),
        row(
            "steady: full rescan",
            seconds(b.steady.wall_ms),
            &b.steady.requests,
            format!(
                "halosync makes {:.1} × fewer requests, takes {:.2} × its time",
                bench::ratio(b.steady.total_requests, s.cycle.requests.total),
                bench::ratio(s.cycle.wall_ms, b.steady.wall_ms)
            ),
        ),
        row(
            "churn: halosync",
            seconds(ch.cycle.wall_ms),
            &ch.cycle.requests,
            format!(
                "{} + {} changed, {} writes, {} failed",
                ch.changed_in_exchange,
                ch.changed_in_halo,
                ch.cycle.run.writes,
                ch.cycle.run.failed_writes
            ),
        ),
        row(
            "churn: full rescan",
            seconds(b.churn.wall_ms),
            &b.churn.requests,
            format!(
                "+ {} writes counted, not sent; halosync makes {:.1} × fewer requests",
                b.churn.writes_counted,
                bench::ratio(b.churn.total_requests, ch.cycle.requests.total)
            ),
        ),
    ];
    let warmup = report.warmup.iter().enumerate().map(|(n, cycle)| {
        let reads: Vec<String> = cycle
            .requests
            .by_route
            .graph
            .iter()
            .map(|(route, count)| {
                format!("{count} × {}", route.rsplit('/').next().unwrap_or(route))
            })
            .collect();
        row(
            &format!("cycle {} after import (latency not slept)", n + 1),
            seconds(cycle.wall_ms),
            &cycle.requests,
            format!("{} writes; Graph: {}", cycle.run.writes, reads.join(", ")),
        )
    });
    rows.splice(1..1, warmup);
    out.push_str(&render(
        &[
            "phase",
            "wall",
            "Graph req",
            "Halo req",
            "Halo 300/5 min",
            "notes",
        ],
        &rows,
    ));
    out.push('\n');
    let l = &report.latency;
    out.push_str(&format!(
        "latency Exchange → Halo (webhook): {}\n",
        latency(&l.exchange_to_halo_webhook)
    ));
    out.push_str(&format!(
        "latency Halo → Exchange (push `{}`): {}\n",
        l.push_schedule,
        latency(&l.halo_to_exchange_push)
    ));
    out.push_str(&format!(
        "memory: import peak RSS {}, `halosync run` idle RSS {}\n\n",
        mib(report.memory.import_peak_rss_kb),
        mib(report.memory.service_idle_rss_kb)
    ));
    let goals: Vec<Vec<String>> = report
        .goals
        .iter()
        .map(|g| {
            vec![
                g.goal.to_string(),
                g.measured.clone(),
                if g.met { "met" } else { "not met" }.to_string(),
            ]
        })
        .collect();
    out.push_str(&render(&["goal", "measured", ""], &goals));
    out.push_str(&format!("\nbench took {}\n", seconds(report.total_wall_ms)));
    out
}
