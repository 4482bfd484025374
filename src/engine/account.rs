//! Unix accounts: a uid's user name and groups, a group's gid, from the system's
//! databases (NSS: `/etc/passwd`, `/etc/group`, or LDAP where configured).

use std::ffi::{CStr, CString};

use crate::domain::access::Principal;

/// Big enough for any sane entry; grown on ERANGE up to [`MAX_BUF`].
const BUF: usize = 4096;
const MAX_BUF: usize = 1 << 20;

/// Calls a `get*_r` function with a growing buffer; `f` returns the libc result
/// code and whether an entry was found.
fn with_buf<T>(mut f: impl FnMut(&mut [libc::c_char]) -> (i32, Option<T>)) -> Option<T> {
    let mut len = BUF;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        match f(&mut buf) {
            (libc::ERANGE, _) if len < MAX_BUF => len *= 4,
            (0, found) => return found,
            _ => return None,
        }
    }
}

/// The user name and primary group of `uid`.
pub fn user(uid: u32) -> Option<(String, u32)> {
    with_buf(|buf| {
        // SAFETY: getpwuid_r writes only into `pwd` and `buf` (whose length it is
        // given); on success `found` points at `pwd`, whose strings point into `buf`,
        // which outlives the read below.
        unsafe {
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut found = std::ptr::null_mut();
            let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found);
            if rc != 0 || found.is_null() || pwd.pw_name.is_null() {
                return (rc, None);
            }
            let name = CStr::from_ptr(pwd.pw_name)
                .to_str()
                .ok()
                .map(str::to_string);
            (0, name.filter(|n| !n.is_empty()).map(|n| (n, pwd.pw_gid)))
        }
    })
}

/// The gid of the group called `name`.
pub fn group_gid(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    with_buf(|buf| {
        // SAFETY: as in `user`, for getgrnam_r.
        unsafe {
            let mut grp: libc::group = std::mem::zeroed();
            let mut found = std::ptr::null_mut();
            let rc = libc::getgrnam_r(
                c.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            );
            if rc != 0 || found.is_null() {
                return (rc, None);
            }
            (0, Some(grp.gr_gid))
        }
    })
}

/// The name of group `gid`.
fn group_name(gid: u32) -> Option<String> {
    with_buf(|buf| {
        // SAFETY: as in `user`, for getgrgid_r.
        unsafe {
            let mut grp: libc::group = std::mem::zeroed();
            let mut found = std::ptr::null_mut();
            let rc = libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut found);
            if rc != 0 || found.is_null() || grp.gr_name.is_null() {
                return (rc, None);
            }
            let name = CStr::from_ptr(grp.gr_name)
                .to_str()
                .ok()
                .map(str::to_string);
            (0, name)
        }
    })
}

/// The names of every group `user` belongs to (its primary group `gid` included).
fn groups(user: &str, gid: u32) -> Vec<String> {
    let Ok(c) = CString::new(user) else {
        return Vec::new();
    };
    let mut n: libc::c_int = 64;
    loop {
        let mut gids = vec![0 as libc::gid_t; n as usize];
        let want = n;
        // SAFETY: getgrouplist writes at most `n` gids into `gids` and sets `n` to
        // how many there are (more than it wrote when it returns -1).
        let rc = unsafe { libc::getgrouplist(c.as_ptr(), gid, gids.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            gids.truncate(n as usize);
            return gids.into_iter().filter_map(group_name).collect();
        }
        if n <= want {
            n = want * 2;
        }
        if n > 65_536 {
            return Vec::new();
        }
    }
}

/// The person behind `uid`: its user name and groups. `None` for a uid with no
/// account (a request from it is refused: it could not be attributed).
pub fn principal(uid: u32) -> Option<Principal> {
    let (name, gid) = user(uid)?;
    let groups = groups(&name, gid);
    Some(Principal { name, groups })
}

/// The account this process runs as (its effective uid).
/// This machine's host name (`unknown` where the kernel does not say).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

pub fn current() -> Principal {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    principal(uid).unwrap_or_else(|| Principal::new(format!("uid{uid}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_current_account_is_the_one_id_reports() {
        let id = |flag: &str| {
            let out = std::process::Command::new("id").arg(flag).output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        };
        let me = super::current();
        assert_eq!(me.name, id("-un"));
        let mut groups: Vec<String> = id("-Gn").split(' ').map(str::to_string).collect();
        let mut mine = me.groups.clone();
        groups.sort();
        mine.sort();
        assert_eq!(mine, groups);
        assert_eq!(super::group_gid("root"), Some(0));
        assert_eq!(super::group_gid("no-such-group-here"), None);
    }
}
