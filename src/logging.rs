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

/// Writes queued lines to `out`: whatever is waiting goes out in one buffered write, flushed
/// as soon as the queue is empty.
fn write_loop(lines: &mpsc::Receiver<Message>, out: &mut impl Write) {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    while let Ok(first) = lines.recv() {
        let mut next = Some(first);
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
