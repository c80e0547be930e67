//! Running the tools tests set up with (npm, pip, python, openssl): with a
//! deadline, both pipes drained as the child writes (a chatty child never
//! blocks on a full pipe), and its output shown when it fails.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` to completion within `limit`; panics with its output if it
/// cannot start, fails or overruns. Returns its standard output.
pub fn run(cmd: &mut Command, limit: Duration) -> String {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what} (is it installed?): {e}"));
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("{what} did not finish in {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "{what} failed ({status}):\n{out}\n{err}");
    out
}

/// Creates (or recreates) the virtual environment `venv` with `python`
/// and `pip install`s `install` into it, run in `cwd` with `env` added;
/// returns the environment's python.
pub fn venv(
    python: &Path,
    venv: &Path,
    install: &[&str],
    cwd: &Path,
    env: &[(&str, &OsStr)],
) -> PathBuf {
    run(
        Command::new(python)
            .arg("-m")
            .arg("venv")
            .arg("--clear")
            .arg(venv),
        Duration::from_secs(120),
    );
    let python = venv.join("bin/python");
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
    ])
    .args(install)
    .current_dir(cwd);
    for (k, v) in env {
        pip.env(k, v);
    }
    run(&mut pip, Duration::from_secs(900));
    python
}
