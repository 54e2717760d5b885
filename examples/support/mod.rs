//! What the benchmark harnesses in `examples/` share: the record they push, a child
//! process that dies with its handle, and readings of a process's memory.
#![allow(dead_code)]

use std::process::Child;

/// Record `i` as one NDJSON line (~190 bytes): id, uuid, name, email, created_at, amount,
/// status.
pub fn record(i: u64) -> String {
    format!(
        "{{\"id\":{i},\"uuid\":\"{:08x}-1b2c-4d5e-8f90-{:012x}\",\"name\":\"Customer {i}\",\"email\":\"customer{i}@example.com\",\"created_at\":\"2026-11-{:02}T10:{:02}:{:02}Z\",\"amount\":{}.{:02},\"status\":\"{}\"}}\n",
        i as u32,
        i,
        1 + i % 28,
        i % 60,
        (i / 60) % 60,
        i % 10_000,
        i % 100,
        ["active", "pending", "closed"][(i % 3) as usize]
    )
}

/// A child process killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `/proc/<pid>/status` field in kB (`VmRSS:`, `VmHWM:`), 0 when unreadable.
pub fn proc_kb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Peak RSS (VmHWM) in MB.
pub fn peak_rss_mb(pid: u32) -> f64 {
    proc_kb(pid, "VmHWM:") / 1024.0
}
