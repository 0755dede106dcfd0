#if canImport(Glibc)
import Glibc
#endif

/// Where the daemon's socket is, derived by client and daemon from the same environment so that a
/// `lookaheadctl` and a `lookaheadd` started by the same user without options find each other.
///
/// The daemon, unless socket-activated (then systemd's socket unit decides) or configured:
/// 1. `$XDG_RUNTIME_DIR/lookaheadd/lookaheadd.sock` when `XDG_RUNTIME_DIR` is set;
/// 2. else `${XDG_CACHE_HOME:-$HOME/.cache}/lookaheadd/lookaheadd.sock`.
///
/// The client, unless given `--socket`:
/// 1. `$LOOKAHEAD_SOCKET` when set;
/// 2. else `/run/lookaheadd/lookaheadd.sock` when it exists (the system daemon, `systemd/lookaheadd.socket`);
/// 3. else where a daemon of this user would be, as above.
///
/// As the XDG base directory specification asks, a variable that is empty or holds a relative path
/// counts as unset.
public enum SocketPath {
    /// `ListenStream=` of `systemd/lookaheadd.socket`.
    public static let system = "/run/lookaheadd/lookaheadd.sock"

    private static let relative = "lookaheadd/lookaheadd.sock"

    /// The client's choice. `systemPath` is the system daemon's socket; tests point it elsewhere.
    public static func `default`(environment: [String: String], systemPath: String = system) -> String {
        if let explicit = environment["LOOKAHEAD_SOCKET"], !explicit.isEmpty { return explicit }
        if exists(systemPath) { return systemPath }
        return daemonDefault(environment: environment)
    }

    /// The daemon's choice when it binds the socket itself.
    public static func daemonDefault(environment: [String: String]) -> String {
        func directory(_ name: String) -> String? {
            guard let value = environment[name], value.hasPrefix("/") else { return nil }
            return value
        }
        if let runtime = directory("XDG_RUNTIME_DIR") { return "\(runtime)/\(relative)" }
        let cache = directory("XDG_CACHE_HOME") ?? "\(directory("HOME") ?? homeOfUser())/.cache"
        return "\(cache)/\(relative)"
    }

    private static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// What `HOME` would have said: services and `env -i` may run without it.
    package static func homeOfUser() -> String {
        guard let entry = getpwuid(geteuid()), let home = entry.pointee.pw_dir else { return "/" }
        return String(cString: home)
    }
}
