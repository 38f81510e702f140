//! Host ports: whether one is free on 127.0.0.1 (where samestack publishes everything), a free
//! one to use, and who holds a taken one — a container publishing it, else a local process
//! found through /proc. `preflight`, `registry` and `doctor` all ask here.

use bollard::Docker as Client;

use crate::docker;

/// True when 127.0.0.1:`port` can be bound now. A listener on 0.0.0.0 or 127.0.0.1 makes it
/// fail, which is what matters for a port published on 127.0.0.1.
pub fn is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// True when binding 127.0.0.1:`port` fails because something listens there (other bind
/// failures, such as permissions for low ports, are not "taken").
pub fn is_taken(port: u16) -> bool {
    matches!(std::net::TcpListener::bind(("127.0.0.1", port)), Err(e) if e.kind() == std::io::ErrorKind::AddrInUse)
}

/// A port the OS says is free on 127.0.0.1 now (for "any free port" settings and tests).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Names who listens on a TCP port: a container publishing it, else a local process.
pub async fn holder(client: &Client, port: u16) -> String {
    if let Ok(containers) = docker::containers_publishing(client, port).await
        && let Some(c) = containers.first()
    {
        let id: String = c.id.clone().unwrap_or_default().chars().take(12).collect();
        return format!("container `{}` ({id})", docker::container_name(c));
    }
    match tokio::task::spawn_blocking(move || process_listening_on(port)).await.ok().flatten() {
        Some((pid, command)) => format!("process {pid} ({command})"),
        None => "an unknown process (not visible from here; try `ss -ltnp`)".to_string(),
    }
}

/// Finds the process listening on `port` through /proc/net/tcp{,6} (socket inode) and
/// /proc/<pid>/fd (who has that inode open): its pid and command line.
pub fn process_listening_on(port: u16) -> Option<(u32, String)> {
    let inodes: Vec<u64> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && wanted.iter().any(|w| target.as_os_str() == w.as_str())
            {
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                let command = cmdline
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ");
                let command = if command.is_empty() {
                    std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default().trim().to_string()
                } else {
                    command
                };
                return Some((pid, command));
            }
        }
    }
    None
}

/// Pure: inodes of sockets in LISTEN state (0A) on `port` in a /proc/net/tcp table.
pub fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(1)?;
            let state = fields.get(3)?;
            let inode = fields.get(9)?.parse::<u64>().ok()?;
            let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (local_port == port && *state == "0A" && inode != 0).then_some(inode)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_inodes_finds_only_listeners_on_the_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0\n\
   1: 0100007F:1388 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0\n\
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0\n";
        assert_eq!(listening_inodes(table, 5000), vec![4242]);
        assert_eq!(listening_inodes(table, 22), vec![99]);
        assert!(listening_inodes(table, 80).is_empty());
    }

    #[test]
    fn a_held_port_is_taken_names_this_process_and_a_free_one_is_free() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(is_taken(port) && !is_free(port));
        let (pid, _command) = process_listening_on(port).expect("our own listener is visible in /proc");
        assert_eq!(pid, std::process::id());
        drop(listener);
        assert!(is_free(free_port().unwrap()));
    }
}
