//! The router's own resource use, read from `/proc/self`.

/// Resident memory in bytes.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// User plus system CPU time, in seconds.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // utime is field 14 of the whole line
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks())
}

/// Asks the kernel to take the pages of the router's own executable out of memory
/// (`MADV_PAGEOUT`), and returns how many bytes of mappings it advised. Start-up runs code that
/// is used once (the config loader, clap, regex compilation, TLS set-up), and the kernel maps
/// 64 KiB around every page touched; without this, all of it stays resident for the life of
/// the process. Code still in use is read back from the file on its next use (a few hundred
/// page faults, once).
pub fn page_out_executable() -> std::io::Result<u64> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let exe = exe.to_string_lossy();
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut advised = 0;
    for line in maps.lines() {
        // start-end perms offset dev inode path
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms), Some(path)) = (fields.next(), fields.next(), fields.nth(3))
        else {
            continue;
        };
        // Writable mappings hold data, not code: leave them.
        if path != exe || perms.as_bytes().get(1) != Some(&b'-') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // SAFETY: the range is a read-only mapping of our own executable file, as the kernel
        // listed it; MADV_PAGEOUT only drops its pages from memory, and the kernel reads them
        // back from the file on the next access, so no content changes.
        let rc =
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        advised += (end - start) as u64;
    }
    Ok(advised)
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system setting.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as u64 } else { 4096 }
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system setting.
    let n = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if n > 0 { n as f64 } else { 100.0 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pages_out_the_executable_and_keeps_running() {
        let advised = super::page_out_executable().unwrap();
        assert!(advised > 0, "no mapping of the test binary was found");
        // Code paged out runs again (read back on use).
        assert!(super::rss_bytes().unwrap() > 0);
    }

    #[test]
    fn reads_own_usage() {
        let rss = super::rss_bytes().unwrap();
        assert!(rss > 100_000, "rss {rss}");
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(super::cpu_seconds().unwrap() >= 0.0);
    }
}
