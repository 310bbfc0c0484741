//! Log lines written off the worker threads. `env_logger` parses `RUST_LOG` and filters every
//! record as usual, and lines are written in its default format; each thread appends its lines
//! to a buffer of its own, and one thread writes what has built up to standard error every few
//! milliseconds. A worker never waits for standard error, shares nothing with the other
//! workers per line (the lock it takes is its own buffer's, which only the writer also takes,
//! once per round), allocates nothing per line, and under load thousands of lines share a write.
//!
//! Nothing is lost on a clean shutdown: `Logging::flush` (run when the server has stopped)
//! writes every line logged before it. On a crash what is lost is at most the lines of the last
//! `POLL` (10 ms) — never more than `THREAD_LIMIT` bytes per thread: a thread whose buffer is
//! that full waits for the writer rather than drop a line. Each thread's lines keep their
//! order; lines of different threads logged within the same round may come out of order (they
//! are written thread by thread).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Bytes of lines one thread may hold before it waits for the writer (thousands of lines: at
/// a hundred thousand requests a second a round of `POLL` leaves about 150 KB in all).
const THREAD_LIMIT: usize = 1 << 20;
/// Bytes of a written buffer kept for the next round (a burst's larger buffer is given back).
const KEEP: usize = 64 * 1024;
/// How long the writer sleeps between rounds while lines keep coming.
const POLL: Duration = Duration::from_millis(10);
/// Empty rounds in a row after which the writer sleeps until a line wakes it (an idle process).
const IDLE_ROUNDS: u32 = 100;

/// One thread's lines not yet written.
type Lines = Arc<Mutex<Vec<u8>>>;

/// Where lines go: every thread's buffer, and the writer that empties them.
pub struct Sink {
    /// Every thread's buffer. Held for a whole round of writing, so two rounds (the writer's,
    /// a flush) never interleave and each thread's lines keep their order.
    threads: Mutex<Vec<Lines>>,
    /// The writer has found nothing for a while and sleeps until a line wakes it.
    sleeping: AtomicBool,
    /// The writer thread, to wake it; unset when there is none (lines are then written at once).
    writer: OnceLock<std::thread::Thread>,
    poll: Duration,
    idle_rounds: u32,
    limit: usize,
}

/// The process's sink.
static SINK: Sink = Sink::new(POLL, IDLE_ROUNDS, THREAD_LIMIT);

thread_local! {
    /// This thread's buffer and the sink it belongs to.
    static MINE: std::cell::RefCell<Option<(usize, Lines)>> = const { std::cell::RefCell::new(None) };
    /// The record being formatted (reused).
    static RECORD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked while holding a buffer left whole lines in it (a line is appended
    // with one `extend`): keep using it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Sink {
    const fn new(poll: Duration, idle_rounds: u32, limit: usize) -> Self {
        Self {
            threads: Mutex::new(Vec::new()),
            sleeping: AtomicBool::new(false),
            writer: OnceLock::new(),
            poll,
            idle_rounds,
            limit,
        }
    }

    /// Appends one or more whole lines to this thread's buffer, waiting while it is full.
    fn push(&self, line: &[u8]) {
        if self.writer.get().is_none() {
            // No writer thread (it could not be started, or not yet): write at once.
            return self.write_now(line);
        }
        let me = self as *const Sink as usize;
        let pushed = MINE.try_with(|mine| {
            let mut mine = mine.borrow_mut();
            let lines: &Lines = match &mut *mine {
                Some((sink, lines)) if *sink == me => lines,
                slot => {
                    let lines = Lines::default();
                    lock(&self.threads).push(lines.clone());
                    &slot.insert((me, lines)).1
                }
            };
            loop {
                let mut buf = lock(lines);
                if buf.len() < self.limit {
                    buf.extend_from_slice(line);
                    break;
                }
                drop(buf);
                self.wake();
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        if pushed.is_err() {
            // Logged while this thread's locals are being torn down: write at once.
            return self.write_now(line);
        }
        if self.sleeping.load(Ordering::SeqCst) {
            self.wake();
        }
    }

    /// Writes `line` to standard error from this thread, between the writer's rounds.
    fn write_now(&self, line: &[u8]) {
        let _round = lock(&self.threads);
        let _ = std::io::stderr().write_all(line);
    }

    fn wake(&self) {
        if self.sleeping.swap(false, Ordering::SeqCst)
            && let Some(writer) = self.writer.get()
        {
            writer.unpark();
        }
    }

    /// Writes every thread's lines to `out`; whether there were any. `spare` is an empty buffer
    /// swapped in for each thread's full one, so no round allocates once the buffers have grown.
    fn drain(&self, out: &mut impl Write, spare: &mut Vec<u8>) -> bool {
        let mut threads = lock(&self.threads);
        let mut any = false;
        for lines in threads.iter() {
            {
                let mut buf = lock(lines);
                if buf.is_empty() {
                    continue;
                }
                std::mem::swap(&mut *buf, spare);
            }
            any = true;
            let _ = out.write_all(spare);
            spare.clear();
            // A burst grew it: it goes to a thread next, which should not keep that much.
            spare.shrink_to(KEEP);
        }
        let _ = out.flush();
        // The buffers of threads that have ended, once written.
        threads.retain(|lines| Arc::strong_count(lines) > 1 || !lock(lines).is_empty());
        any
    }

    fn pending(&self) -> bool {
        lock(&self.threads)
            .iter()
            .any(|lines| !lock(lines).is_empty())
    }

    /// The writer thread's loop: a round every `poll` while lines come, asleep when none came
    /// for `idle_rounds` rounds (until a line wakes it).
    fn write_loop(&self, out: &mut impl Write) -> ! {
        let mut spare = Vec::new();
        let mut empty_rounds = 0u32;
        loop {
            if self.drain(out, &mut spare) {
                empty_rounds = 0;
            } else {
                empty_rounds += 1;
            }
            if empty_rounds >= self.idle_rounds {
                // Say so first, then look once more: a line pushed after the look sees the
                // flag and wakes this thread (a wake before `park` makes it return at once).
                self.sleeping.store(true, Ordering::SeqCst);
                if !self.pending() {
                    std::thread::park();
                }
                self.sleeping.store(false, Ordering::SeqCst);
                empty_rounds = 0;
            } else {
                std::thread::sleep(self.poll);
            }
        }
    }

    /// Starts the writer thread, writing to `out`.
    fn start(&'static self, out: impl Write + Send + 'static) {
        let mut out = out;
        let started = std::thread::Builder::new()
            .name("doorman-log".into())
            .spawn(move || self.write_loop(&mut out));
        if let Ok(handle) = started {
            let _ = self.writer.set(handle.thread().clone());
        }
    }
}

/// env_logger's filter (`RUST_LOG`), writing through the sink in env_logger's default format.
struct Logger {
    filter: env_logger::Logger,
    sink: &'static Sink,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.filter.matches(record) {
            return;
        }
        // The thread's buffer, unless it is in use: a message whose formatting logs, or a
        // thread's locals being torn down, get a buffer of their own.
        let formatted = RECORD.try_with(|buf| {
            let Ok(mut buf) = buf.try_borrow_mut() else {
                return false;
            };
            buf.clear();
            format_record(&mut buf, record);
            self.sink.push(&buf);
            true
        });
        if formatted != Ok(true) {
            let mut buf = Vec::new();
            format_record(&mut buf, record);
            self.sink.push(&buf);
        }
    }

    fn flush(&self) {}
}

/// The process's logging; keep it until the server has stopped, then `flush` it.
pub struct Logging {
    sink: &'static Sink,
}

impl Logging {
    /// Installs the logger: `RUST_LOG` (default `default_filter`) as env_logger reads it,
    /// lines written to standard error by the writer thread.
    pub fn init(default_filter: &str) -> Self {
        let filter = env_logger::Builder::from_env(
            env_logger::Env::default().default_filter_or(default_filter),
        )
        .build();
        let max = filter.filter();
        SINK.start(std::io::stderr());
        if log::set_boxed_logger(Box::new(Logger {
            filter,
            sink: &SINK,
        }))
        .is_ok()
        {
            log::set_max_level(max);
        }
        Self { sink: &SINK }
    }

    /// Writes every line logged so far.
    pub fn flush(&self) {
        self.sink.drain(&mut std::io::stderr(), &mut Vec::new());
    }
}

thread_local! {
    /// The last second this thread wrote a timestamp for, and that timestamp.
    static TIMESTAMP: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
}

/// One record as env_logger's default format writes it — `[{timestamp} {level:<5} {target}]
/// {message}`, the timestamp in RFC 3339 to the second, lines after the first indented by four
/// spaces — with less work per record: the timestamp is formatted once a second per thread,
/// the header written as strings (a unit test holds it to env_logger's own output). At `info`
/// every request logs a line, so this runs on every request (issue 15).
pub fn format_record(out: &mut Vec<u8>, record: &log::Record<'_>) {
    use std::fmt::Write as _;
    let now = std::time::SystemTime::now();
    let second = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    out.push(b'[');
    let written = TIMESTAMP.try_with(|stamp| {
        let (at, text) = &mut *stamp.borrow_mut();
        if *at != second {
            text.clear();
            if let Ok(ts) = jiff::Timestamp::try_from(now) {
                let _ = write!(text, "{ts:.0}");
            }
            *at = second;
        }
        out.extend_from_slice(text.as_bytes());
    });
    if written.is_err()
        && let Ok(ts) = jiff::Timestamp::try_from(now)
    {
        out.extend_from_slice(format!("{ts:.0}").as_bytes());
    }
    // `{level:<5}`, after the space that separates it from the timestamp.
    let level = match record.level() {
        log::Level::Error => " ERROR",
        log::Level::Warn => " WARN ",
        log::Level::Info => " INFO ",
        log::Level::Debug => " DEBUG",
        log::Level::Trace => " TRACE",
    };
    out.extend_from_slice(level.as_bytes());
    let target = record.target();
    if !target.is_empty() {
        out.push(b' ');
        out.extend_from_slice(target.as_bytes());
    }
    out.extend_from_slice(b"] ");
    let start = out.len();
    let _ = write!(ByteString(out), "{}", record.args());
    // Nearly every message is one line: checked in one pass, then nothing to do.
    if memchr::memchr(b'\n', &out[start..]).is_some() {
        let message = out.split_off(start);
        let mut lines = message.split(|&b| b == b'\n');
        if let Some(first) = lines.next() {
            out.extend_from_slice(first);
        }
        for line in lines {
            out.extend_from_slice(b"\n    ");
            out.extend_from_slice(line);
        }
    }
    out.push(b'\n');
}

/// `fmt::Write` into a byte buffer (what is written is UTF-8 already).
struct ByteString<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteString<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink for a logger built in a test: collects what it is given.
    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<u8>>>);
    impl Write for Collect {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Collect {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("lock").clone()).expect("UTF-8")
        }
    }

    /// Our format writes exactly what env_logger's default format writes, for every level,
    /// with and without a target, on one line and on several.
    #[test]
    fn the_format_is_env_loggers_default() {
        use log::Log as _;
        let theirs = Collect::default();
        let default = env_logger::Builder::new()
            .filter_level(log::LevelFilter::Trace)
            .target(env_logger::Target::Pipe(Box::new(theirs.clone())))
            .build();
        let levels = [
            log::Level::Error,
            log::Level::Warn,
            log::Level::Info,
            log::Level::Debug,
            log::Level::Trace,
        ];
        let mut ours = Vec::new();
        // The two read the clock apart: try again if a second ended between them.
        for _attempt in 0..5 {
            ours.clear();
            theirs.0.lock().expect("lock").clear();
            for level in levels {
                for target in ["doorman", "", "doorman::flows::cimd"] {
                    for message in ["GET \"/authorize\" 400 12µs", "two\nlines\n", "", "\n"] {
                        let args = format_args!("{message}");
                        let record = log::Record::builder()
                            .level(level)
                            .target(target)
                            .args(args)
                            .build();
                        format_record(&mut ours, &record);
                        default.log(&record);
                    }
                }
            }
            if ours == *theirs.0.lock().expect("lock") {
                return;
            }
        }
        assert_eq!(String::from_utf8_lossy(&ours), theirs.text());
    }

    /// Every line of every thread arrives whole and in its thread's order, also when the
    /// threads fill their buffers faster than the writer empties them (they wait); a flush
    /// writes what the writer has not yet.
    #[test]
    fn every_line_arrives_in_its_threads_order() {
        // A tiny limit: the threads wait for the writer again and again.
        let sink: &'static Sink = Box::leak(Box::new(Sink::new(Duration::from_millis(1), 5, 64)));
        let out = Collect::default();
        sink.start(out.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..2000 {
                        sink.push(format!("thread {t} line {i}\n").as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        sink.drain(&mut out.clone(), &mut Vec::new());
        let text = out.text();
        for t in 0..4 {
            let prefix = format!("thread {t} line ");
            let mine: Vec<&str> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
            let expected: Vec<String> = (0..2000).map(|i| format!("{prefix}{i}")).collect();
            assert_eq!(mine, expected, "thread {t}");
        }
        assert_eq!(text.lines().count(), 4 * 2000);
        // The buffers of the threads that ended are dropped once written.
        sink.drain(&mut out.clone(), &mut Vec::new());
        assert!(lock(&sink.threads).is_empty());
    }

    /// A message whose formatting logs (a `Display` that logs) gives both lines, whole.
    #[test]
    fn a_message_that_logs_while_formatted_gives_both_lines() {
        use log::Log as _;
        let sink: &'static Sink =
            Box::leak(Box::new(Sink::new(Duration::from_millis(1), 5, 1 << 20)));
        let out = Collect::default();
        sink.start(out.clone());
        let logger = Logger {
            filter: env_logger::Builder::new()
                .filter_level(log::LevelFilter::Info)
                .build(),
            sink,
        };
        struct Nested<'a>(&'a Logger);
        impl std::fmt::Display for Nested<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.log(
                    &log::Record::builder()
                        .level(log::Level::Warn)
                        .target("inner")
                        .args(format_args!("from inside"))
                        .build(),
                );
                f.write_str("the outer message")
            }
        }
        let nested = Nested(&logger);
        logger.log(
            &log::Record::builder()
                .level(log::Level::Info)
                .target("outer")
                .args(format_args!("{nested}"))
                .build(),
        );
        // Filtered out: below the level.
        logger.log(
            &log::Record::builder()
                .level(log::Level::Debug)
                .target("outer")
                .args(format_args!("not wanted"))
                .build(),
        );
        sink.drain(&mut out.clone(), &mut Vec::new());
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with(" WARN  inner] from inside"), "{text}");
        assert!(
            lines[1].ends_with(" INFO  outer] the outer message"),
            "{text}"
        );
    }

    /// A writer that went to sleep after idle rounds is woken by the next line: it is written
    /// without a flush.
    #[test]
    fn a_line_wakes_a_sleeping_writer() {
        let sink: &'static Sink =
            Box::leak(Box::new(Sink::new(Duration::from_millis(1), 3, 1 << 20)));
        let out = Collect::default();
        sink.start(out.clone());
        for round in 0..3 {
            // Long enough for the writer to run its idle rounds and sleep.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !sink.sleeping.load(Ordering::SeqCst) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the writer never slept"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            sink.push(format!("after sleep {round}\n").as_bytes());
            while !out.text().contains(&format!("after sleep {round}\n")) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the line was not written"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
