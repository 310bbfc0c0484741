//! `openloop`: an open-loop HTTP/1.1 load generator, like wrk2 (issue 15, item 7).
//!
//! A closed-loop tool (wrk, h2load) sends the next request on a connection when the last answer
//! arrives, so a server that stalls for 50 ms is simply asked less during those 50 ms: the
//! requests it would have delayed are never sent and never measured ("coordinated omission"),
//! and its p99 looks far better than what clients arriving at their own pace see. Here the
//! requests are due at a fixed rate whatever the server does, and each one's latency runs from
//! when it was DUE, not from when it could be sent: a stall counts for every request it delays.
//!
//! ```text
//! openloop --url URL --rate R [--duration S] [--connections C] [--threads T] [--method M]
//!          [--header 'Name: value']... [--body STRING|@FILE] [--codes FILE] [--timeout S]
//! ```
//!
//! `R × S` requests go over `C` keep-alive connections (plain TCP), each connection on its own
//! fixed schedule of `R / C` per second, their phases staggered (`plan.rs`), the connections
//! shared among `T` threads, each an epoll loop that waits to the nanosecond (`driver.rs`).
//! A request the server delays delays the next ones of its connection (one request in flight
//! per connection, as in wrk2): their latency counts that wait too. The figures include what
//! the tool itself delays: `lag_p99_us` (how late requests were written after they were due)
//! shows how much of the latency was spent before the request left.
//!
//! `--codes FILE` is for single-use bodies (scripts/bench's token path): each line of FILE is
//! used once, as the end of the body (`--body` is its start), request `n` of the schedule taking
//! line `n`; when the lines run out the run stops there (`pool_exhausted`). The file is the code
//! pool scripts/bench collects (one code per line).
//!
//! Output: one JSON line on standard output (counts, status counts, achieved rate, latency
//! percentiles in microseconds) and one line for people on standard error. A request that fails
//! (connection refused or closed, a timeout, an answer that cannot be parsed) counts as an error
//! and the connection is opened again for the next one; errors are not in the percentiles.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command-line report

mod driver;
mod http;
mod plan;

use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use driver::{Job, Tally, micros};
use http::Url;
use plan::{Schedule, percentile};

const USAGE: &str = "\
usage: openloop --url URL --rate R [options]

Sends R requests per second to URL for --duration seconds, each on its own fixed schedule,
and reports latency percentiles measured from when each request was due.

  --url URL            http://HOST[:PORT]/PATH?QUERY (plain HTTP/1.1, keep-alive)
  --rate R             requests per second, in all (required)
  --duration S         seconds of schedule (default 10)
  --connections C      connections, each sending R/C per second (default 64)
  --threads T          sending threads, the connections shared among them (default 2)
  --method M           default GET, or POST when a body is given
  --header 'N: V'      a request header; may be repeated
  --body STRING|@FILE  the request body (with --codes: the start of every body)
  --codes FILE         one body end per line, each used once, in order; the run stops
                       when they run out
  --timeout S          seconds to wait for an answer before counting a timeout (default 5)
";

struct Args {
    url: Url,
    rate: f64,
    duration: f64,
    connections: u64,
    threads: u64,
    method: String,
    headers: Vec<String>,
    body: Option<Vec<u8>>,
    codes: Option<String>,
    timeout: Duration,
}

fn number(flag: &str, value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{flag} needs a positive number, not {value:?}")),
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let (mut url, mut rate, mut duration, mut connections, mut threads) =
        (None, None, 10.0, 64u64, 2u64);
    let (mut method, mut headers, mut body, mut codes, mut timeout) =
        (None, Vec::new(), None, None, 5.0);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value (see --help)"))?;
        match flag.as_str() {
            "--url" => url = Some(http::parse_url(&value)?),
            "--rate" => rate = Some(number(&flag, &value)?),
            "--duration" => duration = number(&flag, &value)?,
            "--connections" => {
                connections = value
                    .parse()
                    .ok()
                    .filter(|&c| (1..=10_000).contains(&c))
                    .ok_or_else(|| {
                        format!("--connections needs a whole number from 1 to 10000, not {value:?}")
                    })?;
            }
            "--threads" => {
                threads = value
                    .parse()
                    .ok()
                    .filter(|&t| (1..=256).contains(&t))
                    .ok_or_else(|| {
                        format!("--threads needs a whole number from 1 to 256, not {value:?}")
                    })?;
            }
            "--method" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(format!(
                        "--method needs a method in capitals such as GET or POST, not {value:?}"
                    ));
                }
                method = Some(value);
            }
            "--header" => {
                let Some((name, _)) = value.split_once(':') else {
                    return Err(format!("--header needs 'Name: value', not {value:?}"));
                };
                if name.trim().is_empty() || name != name.trim() || value.contains(['\r', '\n']) {
                    return Err(format!("--header {value:?} is not a valid header line"));
                }
                headers.push(value);
            }
            "--body" => {
                body = Some(match value.strip_prefix('@') {
                    Some(file) => std::fs::read(file)
                        .map_err(|e| format!("cannot read the body file {file}: {e}"))?,
                    None => value.into_bytes(),
                });
            }
            "--codes" => codes = Some(value),
            "--timeout" => timeout = number(&flag, &value)?,
            _ => return Err(format!("unknown option {flag} (see --help)")),
        }
    }
    let url = url.ok_or("--url is required (see --help)")?;
    let rate = rate.ok_or("--rate is required (see --help)")?;
    let has_body = body.is_some() || codes.is_some();
    let method = method.unwrap_or_else(|| if has_body { "POST" } else { "GET" }.to_owned());
    let lower: Vec<String> = headers.iter().map(|h| h.to_ascii_lowercase()).collect();
    if lower.iter().any(|h| {
        h.starts_with("host:")
            || h.starts_with("content-length:")
            || h.starts_with("transfer-encoding:")
    }) {
        return Err("Host, Content-Length and Transfer-Encoding are set by the tool; leave them out of --header".to_owned());
    }
    Ok(Some(Args {
        url,
        rate,
        duration,
        connections,
        threads,
        method,
        headers,
        body,
        codes,
        timeout: Duration::from_secs_f64(timeout),
    }))
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn run(args: Args) -> Result<(), String> {
    let schedule = Schedule::new(args.rate, args.duration, args.connections)?;
    let addr = args
        .url
        .addr
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {}: {e}", args.url.addr))?
        .next()
        .ok_or_else(|| format!("{} resolves to no address", args.url.addr))?;
    let codes = match &args.codes {
        None => None,
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read the codes file {file}: {e}"))?;
            let lines: Vec<String> = text
                .lines()
                .map(str::trim_end)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            if lines.is_empty() {
                return Err(format!("the codes file {file} has no lines"));
            }
            Some(lines)
        }
    };
    let head = args.method == "HEAD";
    let prefix = args.body.clone().unwrap_or_default();
    let fixed = codes.is_none().then(|| {
        let body = (args.body.is_some() || args.method == "POST" || args.method == "PUT")
            .then_some(prefix.as_slice());
        http::request(&args.method, &args.url, &args.headers, body)
    });
    let job = Arc::new(Job {
        schedule,
        addr,
        url: args.url.clone(),
        method: args.method.clone(),
        headers: args.headers.clone(),
        fixed,
        prefix,
        codes,
        head,
        timeout: args.timeout,
        duration: Duration::from_secs_f64(args.duration),
    });
    // Fail early and clearly when nothing listens there.
    TcpStream::connect_timeout(&addr, args.timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;

    // Linux lets a wait end up to 50 µs late by default (timer slack), to batch wake-ups; that
    // lateness would be added to every latency measured. Threads inherit the slack of the thread
    // that starts them, so this thread sets 1 ns before starting them. Best effort: without the
    // permission to (CAP_SYS_NICE on some kernels), the default stays, and lag_p50_us shows it.
    let _ = std::fs::write("/proc/self/timerslack_ns", "1");
    let mut total = drive(&job, args.threads)?;
    if let Some(fatal) = total.fatal.take() {
        return Err(fatal);
    }
    report(&args, &job, &mut total);
    Ok(())
}

/// Runs the schedule on `threads` threads (connection `c` on thread `c mod threads`), started
/// together once every connection is open.
fn drive(job: &Arc<Job>, threads: u64) -> Result<Tally, String> {
    let conns = job.schedule.connections();
    let threads = threads.clamp(1, conns);
    let n = usize::try_from(threads).unwrap_or(1);
    let ready = Arc::new(Barrier::new(n + 1));
    let go = Arc::new(Barrier::new(n + 1));
    let start = Arc::new(Mutex::new(None));
    let mut handles = Vec::with_capacity(n);
    for t in 0..threads {
        let mine: Vec<u64> = (t..conns).step_by(n).collect();
        let (job, ready, go, start) = (job.clone(), ready.clone(), go.clone(), start.clone());
        let spawned = thread::Builder::new()
            .name(format!("sender-{t}"))
            .spawn(move || driver::run_thread(&job, mine, &ready, &go, &start));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                // The threads already started wait at the barrier for all of them: ending the
                // process ends them too.
                eprintln!("openloop: cannot start thread {t} of {n}: {e}");
                std::process::exit(1);
            }
        }
    }
    ready.wait();
    // A few milliseconds for every thread to reach its first wait.
    let t0 = Instant::now() + Duration::from_millis(20);
    *start.lock().unwrap_or_else(|p| p.into_inner()) = Some(t0);
    go.wait();
    let mut total = Tally::default();
    for h in handles {
        match h.join() {
            Ok(tally) => total.add(tally),
            Err(_) => return Err("a sending thread panicked".to_owned()),
        }
    }
    Ok(total)
}

fn report(args: &Args, job: &Job, t: &mut Tally) {
    t.latencies.sort_unstable();
    t.lags.sort_unstable();
    let pct = |v: &[u64], p: f64| percentile(v, p).map_or("null".to_owned(), |x| x.to_string());
    let mean = if t.latencies.is_empty() {
        "null".to_owned()
    } else {
        (t.latencies.iter().map(|&x| u128::from(x)).sum::<u128>() / t.latencies.len() as u128)
            .to_string()
    };
    // Over the time answers actually came in: shorter than the schedule when the codes ran out.
    let elapsed = if t.last.is_zero() {
        job.duration
    } else {
        t.last
    };
    let achieved = t.answered as f64 / elapsed.as_secs_f64();
    let status = t
        .status
        .iter()
        .map(|(s, n)| format!("\"{s}\":{n}"))
        .collect::<Vec<_>>()
        .join(",");
    println!(
        "{{\"url\":{},\"method\":{},\"rate\":{},\"duration_s\":{},\"connections\":{},\"scheduled\":{},\"sent\":{},\"answered\":{},\"unsent\":{},\"pool_exhausted\":{},\"errors\":{},\"connect_errors\":{},\"write_errors\":{},\"read_errors\":{},\"timeouts\":{},\"parse_errors\":{},\"reconnects\":{},\"elapsed_us\":{},\"achieved_rps\":{:.1},\"status\":{{{}}},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"mean_us\":{},\"lag_p50_us\":{},\"lag_p99_us\":{},\"lag_max_us\":{}}}",
        json_string(&format!("http://{}{}", job.url.host, job.url.target)),
        json_string(&args.method),
        args.rate,
        args.duration,
        job.schedule.connections(),
        job.schedule.total(),
        t.sent,
        t.answered,
        t.unsent,
        t.pool_exhausted,
        t.errors(),
        t.connect_errors,
        t.write_errors,
        t.read_errors,
        t.timeouts,
        t.parse_errors,
        t.reconnects,
        micros(elapsed),
        achieved,
        status,
        pct(&t.latencies, 50.0),
        pct(&t.latencies, 90.0),
        pct(&t.latencies, 99.0),
        pct(&t.latencies, 99.9),
        t.latencies.last().map_or("null".to_owned(), u64::to_string),
        mean,
        pct(&t.lags, 50.0),
        pct(&t.lags, 99.0),
        t.lags.last().map_or("null".to_owned(), u64::to_string),
    );
    let ms = |v: &[u64], p: f64| {
        percentile(v, p).map_or("-".to_owned(), |x| format!("{:.2}", x as f64 / 1000.0))
    };
    let statuses = t
        .status
        .iter()
        .map(|(s, n)| format!("{s}×{n}"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut line = format!(
        "openloop: {} {} at {} req/s for {} s over {} connections: {} due, {} answered ({:.0} req/s); latency ms p50 {} p90 {} p99 {} p99.9 {} max {} (written late p99 {}); status {}",
        args.method,
        job.url.target.split('?').next().unwrap_or(""),
        args.rate,
        args.duration,
        job.schedule.connections(),
        job.schedule.total(),
        t.answered,
        achieved,
        ms(&t.latencies, 50.0),
        ms(&t.latencies, 90.0),
        ms(&t.latencies, 99.0),
        ms(&t.latencies, 99.9),
        ms(&t.latencies, 100.0),
        ms(&t.lags, 99.0),
        if statuses.is_empty() {
            "none".to_owned()
        } else {
            statuses
        },
    );
    if t.unsent > 0 {
        line.push_str(&format!(
            "; {} never sent ({})",
            t.unsent,
            if t.pool_exhausted {
                "the codes ran out"
            } else {
                "behind schedule when the time was up"
            }
        ));
    }
    if t.errors() > 0 {
        line.push_str(&format!(
            "; {} errors, first: {}",
            t.errors(),
            t.first_errors.join(" | ")
        ));
    }
    eprintln!("{line}");
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(args)) => args,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("openloop: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("openloop: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};

    fn args(list: &[&str]) -> Result<Option<Args>, String> {
        parse_args(list.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn command_line() {
        let a = args(&[
            "--url",
            "http://127.0.0.1:1/t",
            "--rate",
            "100",
            "--body",
            "x=1&code=",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (a.method.as_str(), a.connections, a.duration),
            ("POST", 64, 10.0)
        );
        assert!(args(&["--help"]).unwrap().is_none());
        for bad in [
            &["--rate", "10"][..],
            &["--url", "http://h/"],
            &["--url", "http://h/", "--rate", "0"],
            &["--url", "http://h/", "--rate", "10", "--connections", "0"],
            &["--url", "http://h/", "--rate", "10", "--header", "nocolon"],
            &["--url", "http://h/", "--rate", "10", "--header", "Host: x"],
            &["--url", "http://h/", "--rate", "10", "--bogus", "1"],
            &["--url", "http://h/", "--rate"],
        ] {
            assert!(args(bad).is_err(), "{bad:?}");
        }
    }

    /// A server that answers every request on each connection with `answer`.
    fn serve(answer: &'static [u8]) -> SocketAddr {
        serve_stalling(answer, Duration::ZERO)
    }

    /// The same, but the first answer of each connection waits `stall`.
    fn serve_stalling(answer: &'static [u8], stall: Duration) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { return };
                thread::spawn(move || {
                    let mut stall = stall;
                    let mut buf = [0u8; 4096];
                    let mut pending = Vec::new();
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                        // One answer per complete request head (the tests send no bodies).
                        while let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            pending.drain(..i + 4);
                            thread::sleep(std::mem::take(&mut stall));
                            if s.write_all(answer).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    fn job(addr: SocketAddr, rate: f64, secs: f64, conns: u64) -> Job {
        let url = http::parse_url(&format!("http://{addr}/x")).unwrap();
        Job {
            schedule: Schedule::new(rate, secs, conns).unwrap(),
            addr,
            fixed: Some(http::request("GET", &url, &[], None)),
            url,
            method: "GET".into(),
            headers: vec![],
            prefix: vec![],
            codes: None,
            head: false,
            timeout: Duration::from_secs(2),
            duration: Duration::from_secs_f64(secs),
        }
    }

    fn run_job(job: Job) -> Tally {
        let job = Arc::new(job);
        let t = drive(&job, 2).unwrap();
        assert!(t.fatal.is_none());
        t
    }

    #[test]
    fn sends_the_schedule_and_counts_every_answer() {
        let addr = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let t = run_job(job(addr, 400.0, 0.5, 4));
        assert_eq!(
            (t.answered + t.unsent, t.sent, t.errors()),
            (200, t.answered, 0)
        );
        assert!(t.answered >= 195, "{} answered", t.answered);
        assert_eq!(t.status.get(&200), Some(&t.answered));
        assert_eq!(t.reconnects, 0, "keep-alive: one connection each");
        // Spread over the half second, not sent in a burst.
        assert!(t.last >= Duration::from_millis(480), "{:?}", t.last);
    }

    #[test]
    fn a_stall_counts_for_every_request_it_delays() {
        // One connection, a request every 10 ms; the first answer takes 200 ms. The 19 requests
        // due meanwhile leave late, and their latency runs from when they were due: about 190,
        // 180, … 10 ms. A closed loop would have measured one slow request and 19 fast ones.
        let addr = serve_stalling(
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            Duration::from_millis(200),
        );
        let mut t = run_job(job(addr, 100.0, 1.0, 1));
        assert_eq!((t.answered, t.errors()), (100, 0));
        t.latencies.sort_unstable();
        let slow = t.latencies.iter().filter(|&&us| us >= 5_000).count();
        // (More on a busy machine, where the generator itself is sometimes late.)
        assert!(slow >= 18, "{slow} slow: {:?}", &t.latencies[70..]);
        assert!(
            t.latencies[99] >= 200_000 && t.latencies[98] >= 180_000,
            "{:?}",
            &t.latencies[95..]
        );
        // The generator's own part: the delayed requests were written late, by the stall.
        t.lags.sort_unstable();
        assert!(t.lags[98] >= 170_000, "{:?}", &t.lags[95..]);
    }

    #[test]
    fn chunked_answers_and_closed_connections() {
        let addr =
            serve(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        let t = run_job(job(addr, 200.0, 0.25, 2));
        // (On a busy machine a request may be left unsent at the end: counted, not lost.)
        assert_eq!(
            (t.answered + t.unsent, t.errors(), t.reconnects),
            (50, 0, 0)
        );
        assert!(t.answered >= 45, "{} answered", t.answered);
        // Connection: close after each answer: every request after the first on a connection
        // opens a new one, and none is an error.
        let addr = serve(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        let t = run_job(job(addr, 200.0, 0.25, 2));
        assert_eq!((t.answered + t.unsent, t.errors()), (50, 0));
        assert_eq!(t.reconnects, t.answered - 2);
        assert!(t.answered >= 45, "{} answered", t.answered);
    }

    #[test]
    fn codes_are_used_once_and_run_out() {
        let addr = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        let mut j = job(addr, 500.0, 0.2, 3);
        j.fixed = None;
        j.method = "POST".into();
        j.prefix = b"code=".to_vec();
        j.codes = Some((0..40).map(|i| format!("c{i}")).collect());
        assert!(j.request(39).is_some_and(|r| r.ends_with(b"code=c39")));
        let t = run_job(j);
        assert_eq!((t.answered, t.unsent, t.pool_exhausted), (40, 60, true));
    }
}
