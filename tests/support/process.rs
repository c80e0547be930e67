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

/// A program from one of Debian's packages, for tests that check output
/// with the real tool (`promtool` from `prometheus`): the one on `PATH`,
/// else the binary unpacked from the package (`apt-get download`, then
/// `dpkg-deb -x`, no maintainer scripts run, nothing installed system-wide)
/// into `cache`, where later runs find it. Serialised across test
/// processes with a lock file in `cache`.
pub fn debian_tool(name: &str, package: &str, cache: &Path) -> PathBuf {
    if let Ok(out) = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        && out.status.success()
    {
        return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    }
    std::fs::create_dir_all(cache).unwrap();
    let unpacked = cache.join(package);
    let found = |root: &Path| {
        ["usr/bin", "bin", "usr/sbin"]
            .iter()
            .map(|d| root.join(d).join(name))
            .find(|p| p.is_file())
    };
    let lock = std::fs::File::create(cache.join(format!("{package}.lock"))).unwrap();
    lock.lock().unwrap();
    if let Some(tool) = found(&unpacked) {
        return tool;
    }
    let download = tempfile::tempdir_in(cache).unwrap();
    let fetch = || {
        Command::new("apt-get")
            .args(["download", "-q", package])
            .current_dir(download.path())
            .output()
            .unwrap()
    };
    let mut out = fetch();
    if !out.status.success() {
        // A machine whose package lists were never fetched.
        let _ = Command::new("apt-get").args(["update", "-q"]).output();
        out = fetch();
    }
    assert!(
        out.status.success(),
        "apt-get download {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = std::fs::read_dir(download.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .unwrap_or_else(|| panic!("apt-get download {package} wrote no .deb"));
    let staging = tempfile::tempdir_in(cache).unwrap();
    run(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&deb)
            .arg(staging.path()),
        Duration::from_secs(300),
    );
    let staged = staging.keep();
    let _ = std::fs::remove_dir_all(&unpacked);
    std::fs::rename(&staged, &unpacked).unwrap();
    found(&unpacked).unwrap_or_else(|| panic!("package {package} has no {name}"))
}

/// Installs Debian's `package` (as root, or with sudo) unless `binary`
/// exists: for tests that drive a real program (Debian's Chromium).
/// Serialised across test processes with a lock file in `cache`.
pub fn debian_package(binary: &Path, package: &str, cache: &Path) -> PathBuf {
    if binary.exists() {
        return binary.to_path_buf();
    }
    std::fs::create_dir_all(cache).unwrap();
    let lock = std::fs::File::create(cache.join(format!("{package}.install.lock"))).unwrap();
    lock.lock().unwrap();
    if binary.exists() {
        return binary.to_path_buf();
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let install = |update: bool| {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        if update {
            c.args(["update", "-q"]);
        } else {
            c.args(["install", "-y", "-q", package]);
        }
        c.env("DEBIAN_FRONTEND", "noninteractive").output()
    };
    let out = install(false).unwrap();
    if !out.status.success() {
        let _ = install(true);
        let out = install(false).unwrap();
        assert!(
            out.status.success(),
            "apt-get install {package}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(binary.exists(), "{package} has no {}", binary.display());
    binary.to_path_buf()
}
