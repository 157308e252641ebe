//! What `kubectl attach` (and `kubectl run -i`/`-it`) reaches: a container's running process.
//!
//! A container with `stdin: true` or `tty: true` gets a console: the kubelet keeps the other
//! end of its stdin (a pipe) or of its terminal, and copies what it writes both into its log
//! file and to whoever is attached. With `stdinOnce`, the container's stdin closes when the
//! first attached client's does (on a terminal: an end-of-file character). Any other
//! container is attached to by following its log file: output only, from now on.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Container;
use svcnet_apiserver::exec::{Attached, STDERR, STDOUT};
use tokio::sync::{broadcast, mpsc};

/// namespace, pod, container.
pub type Key = (String, String, String);

/// A piece of output and its channel (stdout or stderr).
type Chunk = (u8, Vec<u8>);

/// The ends the kubelet reads a container's output from, with their channels.
type Readers = Vec<(u8, File)>;

/// One container's console.
pub struct Console {
    /// Its stdin (a pipe's writing end, or the terminal's master side) while it is open.
    input: Mutex<Option<File>>,
    /// Its terminal's master side, when it runs on one.
    terminal: Option<File>,
    /// What it writes, while it runs.
    output: Mutex<Option<broadcast::Sender<Chunk>>>,
    stdin_once: bool,
}

/// Every console of the lab's running containers.
#[derive(Default)]
pub struct Consoles(Mutex<HashMap<Key, Arc<Console>>>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Consoles {
    pub fn get(&self, key: &Key) -> Option<Arc<Console>> {
        lock(&self.0).get(key).cloned()
    }

    fn insert(&self, key: Key, console: Arc<Console>) {
        lock(&self.0).insert(key, console);
    }

    /// Forgets a pod's consoles (it is gone).
    pub fn remove_pod(&self, namespace: &str, pod: &str) {
        lock(&self.0).retain(|(ns, p, _), _| !(ns == namespace && p == pod));
    }
}

/// A container's standard streams, and what to start once it runs.
pub struct Streams {
    stdin: Stdio,
    stdout: Stdio,
    stderr: Stdio,
    tty: bool,
    start: Pending,
}

/// A console to start once its container runs.
pub struct Pending(Option<(Arc<Console>, Readers)>);

/// The streams of a container that writes to `log`: a console when its spec asks for stdin or
/// a terminal, else stdin from nothing and output straight to the file.
pub fn streams(spec: &Container, log: &File) -> std::io::Result<Streams> {
    let (stdin, tty) = (spec.stdin.unwrap_or(false), spec.tty.unwrap_or(false));
    if !stdin && !tty {
        return Ok(Streams {
            stdin: Stdio::null(),
            stdout: log.try_clone()?.into(),
            stderr: log.try_clone()?.into(),
            tty: false,
            start: Pending(None),
        });
    }
    let stdin_once = spec.stdin_once.unwrap_or(false);
    let (output, _) = broadcast::channel(256);
    if tty {
        let (master, slave) = super::isolation::open_terminal()?;
        let console = Console {
            input: Mutex::new(stdin.then(|| master.try_clone()).transpose()?),
            terminal: Some(master.try_clone()?),
            output: Mutex::new(Some(output)),
            stdin_once,
        };
        return Ok(Streams {
            stdin: slave.try_clone()?.into(),
            stdout: slave.try_clone()?.into(),
            stderr: slave.into(),
            tty: true,
            start: Pending(Some((Arc::new(console), vec![(STDOUT, master)]))),
        });
    }
    let (stdin_reader, stdin_writer) = std::io::pipe()?;
    let (out_reader, out_writer) = std::io::pipe()?;
    let (err_reader, err_writer) = std::io::pipe()?;
    let console = Console {
        input: Mutex::new(Some(File::from(std::os::fd::OwnedFd::from(stdin_writer)))),
        terminal: None,
        output: Mutex::new(Some(output)),
        stdin_once,
    };
    let readers = vec![
        (STDOUT, File::from(std::os::fd::OwnedFd::from(out_reader))),
        (STDERR, File::from(std::os::fd::OwnedFd::from(err_reader))),
    ];
    Ok(Streams {
        stdin: stdin_reader.into(),
        stdout: out_writer.into(),
        stderr: err_writer.into(),
        tty: false,
        start: Pending(Some((Arc::new(console), readers))),
    })
}

impl Streams {
    /// It runs on a terminal: it must lead a session of its own with it.
    pub fn tty(&self) -> bool {
        self.tty
    }

    /// Gives `command` its streams; what is left starts the console once it runs.
    pub fn give_to(self, command: &mut tokio::process::Command) -> Pending {
        command.stdin(self.stdin).stdout(self.stdout).stderr(self.stderr);
        self.start
    }
}

impl Pending {
    /// Once the container runs: its console is registered under `key`, and its output copied
    /// into `log` and to attached clients until it ends.
    pub fn started(self, consoles: &Consoles, key: Key, log: &File) -> std::io::Result<()> {
        let Some((console, readers)) = self.0 else {
            return Ok(());
        };
        consoles.insert(key, console.clone());
        let left = Arc::new(std::sync::atomic::AtomicUsize::new(readers.len()));
        for (channel, mut reader) in readers {
            let (console, left, mut log) = (console.clone(), left.clone(), log.try_clone()?);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 32 * 1024];
                // a terminal's master reads EIO once nothing holds its other side
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let _ = log.write_all(&buf[..n]);
                    if let Some(out) = lock(&console.output).as_ref() {
                        let _ = out.send((channel, buf[..n].to_vec()));
                    }
                }
                if left.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                    // the container is done writing: attached clients are told so
                    lock(&console.output).take();
                    lock(&console.input).take();
                }
            });
        }
        Ok(())
    }
}

/// An attached client's stdin: with `stdinOnce`, the container's ends with it.
struct AttachedInput {
    file: File,
    console: Arc<Console>,
}

impl Write for AttachedInput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AttachedInput {
    fn drop(&mut self) {
        if !self.console.stdin_once {
            return;
        }
        match &self.console.terminal {
            // a terminal stays: end-of-file is a character on it (at a line's start)
            Some(_) => {
                let _ = self.file.write_all(b"\x04");
            }
            None => {
                lock(&self.console.input).take();
            }
        }
    }
}

/// Attaches to `key`'s console, or follows `log` when the container has none.
pub fn attach(consoles: &Consoles, key: &Key, log: PathBuf, stdin: bool) -> std::io::Result<Attached> {
    let (tx, output) = mpsc::channel(64);
    let Some(console) = consoles.get(key) else {
        if stdin {
            return Err(std::io::Error::other(format!(
                "container {} was not started with stdin: true, so only its output can be attached to (without -i)",
                key.2
            )));
        }
        tokio::spawn(follow(log, tx));
        return Ok(Attached {
            output,
            input: None,
            terminal: None,
        });
    };
    let Some(mut from) = lock(&console.output).as_ref().map(broadcast::Sender::subscribe) else {
        return Err(std::io::Error::other(format!("container {} is not running", key.2)));
    };
    tokio::spawn(async move {
        loop {
            match from.recv().await {
                Ok(chunk) => {
                    if tx.send(chunk).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let input = match stdin {
        true => lock(&console.input)
            .as_ref()
            .map(File::try_clone)
            .transpose()?
            .map(|file| {
                Box::new(AttachedInput {
                    file,
                    console: console.clone(),
                }) as Box<dyn Write + Send>
            }),
        false => None,
    };
    let terminal = console.terminal.as_ref().map(File::try_clone).transpose()?;
    Ok(Attached {
        output,
        input,
        terminal,
    })
}

/// What is added to `log` from now on, every 200 ms, until the file is replaced (the
/// container restarted) or removed, or the client goes.
async fn follow(log: PathBuf, to: mpsc::Sender<Chunk>) {
    use std::os::unix::fs::MetadataExt;
    let Ok(mut file) = File::open(&log) else {
        return;
    };
    let Ok(inode) = file.metadata().map(|m| m.ino()) else {
        return;
    };
    let _ = file.seek(std::io::SeekFrom::End(0));
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if std::fs::metadata(&log).map(|m| m.ino()).ok() != Some(inode) || to.is_closed() {
            return;
        }
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            if to.send((STDOUT, buf[..n].to_vec())).await.is_err() {
                return;
            }
        }
    }
}
