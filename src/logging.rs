//! Log lines written off the worker threads. `env_logger` filters and formats every record as
//! usual (`RUST_LOG`, its format), then hands the line to a bounded queue; one thread writes
//! what has queued up to standard error in one go. A worker never waits for standard error, and
//! under load many lines share a write.
//!
//! Nothing is lost on a clean shutdown: `Logging::flush` (run when the server has stopped)
//! waits until every queued line is written. On a crash at most the queue (`QUEUE` lines) and
//! one write buffer are lost. A full queue makes the worker wait rather than drop a line.

use std::io::{BufWriter, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;

/// Lines that may wait to be written before a worker has to wait for the writer.
const QUEUE: usize = 8192;

enum Message {
    Line(Vec<u8>),
    /// Write everything queued before this, then answer.
    Flush(mpsc::SyncSender<()>),
}

/// The end of the queue env_logger writes into.
struct Queue(mpsc::SyncSender<Message>);

impl Write for Queue {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(Message::Line(buf.to_vec()))
            .map_err(|_| std::io::Error::other("the log writer has stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // Each record is one write; the writer thread flushes when the queue runs dry.
        Ok(())
    }
}

/// The process's logging; keep it until the server has stopped, then `flush` it.
pub struct Logging {
    queue: mpsc::SyncSender<Message>,
    _writer: JoinHandle<()>,
}

impl Logging {
    /// Installs env_logger (`RUST_LOG`, default `default_filter`) writing through the queue.
    pub fn init(default_filter: &str) -> Self {
        let (queue, lines) = mpsc::sync_channel(QUEUE);
        let writer = std::thread::Builder::new()
            .name("doorman-log".into())
            .spawn(move || write_loop(&lines, &mut std::io::stderr()))
            .unwrap_or_else(|_| std::thread::spawn(|| {}));
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
            .format(default_format)
            .target(env_logger::Target::Pipe(Box::new(Queue(queue.clone()))))
            .init();
        Self {
            queue,
            _writer: writer,
        }
    }

    /// Waits until every line logged so far is written.
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.queue.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

thread_local! {
    /// The last second this thread wrote a timestamp for, and that timestamp.
    static TIMESTAMP: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((u64::MAX, String::new())) };
    /// The message of the record being formatted (reused).
    static MESSAGE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// env_logger's default format — `[{timestamp} {level:<5} {target}] {message}`, the timestamp
/// in RFC 3339 to the second, lines after the first indented by four spaces — written with
/// less work per record: the timestamp is formatted once a second per thread, and the header
/// is written as strings (a unit test holds it to env_logger's own output). At `info` every
/// request logs a line, so this runs on every request (issue 15).
pub fn default_format(
    buf: &mut env_logger::fmt::Formatter,
    record: &log::Record<'_>,
) -> std::io::Result<()> {
    use std::fmt::Write as _;
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    TIMESTAMP.with_borrow_mut(|(at, text)| {
        if *at != second {
            text.clear();
            let _ = write!(text, "{}", buf.timestamp_seconds());
            *at = second;
        }
        buf.write_all(b"[")?;
        buf.write_all(text.as_bytes())
    })?;
    // `{level:<5}`, after the space that separates it from the timestamp.
    let level = match record.level() {
        log::Level::Error => " ERROR",
        log::Level::Warn => " WARN ",
        log::Level::Info => " INFO ",
        log::Level::Debug => " DEBUG",
        log::Level::Trace => " TRACE",
    };
    buf.write_all(level.as_bytes())?;
    let target = record.target();
    if !target.is_empty() {
        buf.write_all(b" ")?;
        buf.write_all(target.as_bytes())?;
    }
    buf.write_all(b"] ")?;
    MESSAGE.with_borrow_mut(|message| {
        message.clear();
        let _ = write!(message, "{}", record.args());
        let mut lines = message.split('\n');
        if let Some(first) = lines.next() {
            buf.write_all(first.as_bytes())?;
        }
        for line in lines {
            buf.write_all(b"\n    ")?;
            buf.write_all(line.as_bytes())?;
        }
        buf.write_all(b"\n")
    })
}

/// How long the writer sleeps between looks at the queue while lines keep coming.
const POLL: std::time::Duration = std::time::Duration::from_millis(10);
/// Empty looks in a row after which the writer waits on the queue instead (an idle process).
const IDLE_LOOKS: u32 = 100;

/// Writes queued lines to `out`: whatever is waiting goes out in one buffered write, flushed
/// as soon as the queue is empty. While lines keep coming the writer looks at the queue every
/// `POLL` instead of waiting on it, so a worker's send never has to wake it (a wake-up is a
/// system call on the worker and a context switch; with one line per request they cost more
/// than writing the lines, measured in issue 15); after a second without lines it waits on the
/// queue again, and the next line wakes it. A line is written at most `POLL` after it was
/// logged, a `Flush` answered after everything before it.
fn write_loop(lines: &mpsc::Receiver<Message>, out: &mut impl Write) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let mut empty_looks = 0u32;
    loop {
        let message = if empty_looks >= IDLE_LOOKS {
            match lines.recv() {
                Ok(m) => m,
                Err(_) => break,
            }
        } else {
            match lines.try_recv() {
                Ok(m) => m,
                Err(mpsc::TryRecvError::Empty) => {
                    let _ = out.flush();
                    empty_looks += 1;
                    std::thread::sleep(POLL);
                    continue;
                }
                Err(mpsc::TryRecvError::Disconnected) => break,
            }
        };
        empty_looks = 0;
        let mut next = Some(message);
        while let Some(message) = next.take() {
            match message {
                Message::Line(line) => {
                    let _ = out.write_all(&line);
                }
                Message::Flush(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            next = lines.try_recv().ok();
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink for a logger built in a test: collects what it is given.
    #[derive(Clone, Default)]
    struct Collect(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Collect {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Our format writes exactly what env_logger's default format writes, for every level,
    /// with and without a target, on one line and on several.
    #[test]
    fn the_format_is_env_loggers_default() {
        use log::Log as _;
        let ours = Collect::default();
        let theirs = Collect::default();
        let logger = |sink: Collect, custom: bool| {
            let mut b = env_logger::Builder::new();
            b.filter_level(log::LevelFilter::Trace)
                .target(env_logger::Target::Pipe(Box::new(sink)));
            if custom {
                b.format(default_format);
            }
            b.build()
        };
        let (mine, default) = (logger(ours.clone(), true), logger(theirs.clone(), false));
        let levels = [
            log::Level::Error,
            log::Level::Warn,
            log::Level::Info,
            log::Level::Debug,
            log::Level::Trace,
        ];
        // The two loggers read the clock apart: try again if a second ended between them.
        for _attempt in 0..5 {
            ours.0.lock().expect("lock").clear();
            theirs.0.lock().expect("lock").clear();
            for level in levels {
                for target in ["doorman", "", "doorman::flows::cimd"] {
                    for message in ["GET \"/authorize\" 400 12µs", "two\nlines\n", ""] {
                        let log = |logger: &env_logger::Logger| {
                            logger.log(
                                &log::Record::builder()
                                    .level(level)
                                    .target(target)
                                    .args(format_args!("{message}"))
                                    .build(),
                            );
                        };
                        log(&mine);
                        log(&default);
                    }
                }
            }
            if *ours.0.lock().expect("lock") == *theirs.0.lock().expect("lock") {
                return;
            }
        }
        let text = |c: &Collect| String::from_utf8_lossy(&c.0.lock().expect("lock")).into_owned();
        assert_eq!(text(&ours), text(&theirs));
    }

    /// Every line arrives, in order, and a flush answers only after the lines before it are
    /// written.
    #[test]
    fn lines_arrive_in_order_and_a_flush_waits_for_them() {
        let (queue, lines) = mpsc::sync_channel(4);
        let written = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = written.clone();
        let writer = std::thread::spawn(move || write_loop(&lines, &mut Shared(sink)));
        let mut q = Queue(queue.clone());

        for i in 0..1000 {
            q.write_all(format!("line {i}\n").as_bytes())
                .expect("write");
        }
        let (done, wait) = mpsc::sync_channel(1);
        queue.send(Message::Flush(done)).expect("send");
        wait.recv().expect("flushed");

        let text = String::from_utf8(written.lock().expect("lock").clone()).expect("UTF-8");
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
        drop((q, queue));
        writer.join().expect("writer ends with the queue");
    }
}
