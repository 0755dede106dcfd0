import LookaheadProtocol

/// Where the job store lives when neither `--state-dir` nor `state_dir` says: systemd's
/// `StateDirectory=` (passed as `$STATE_DIRECTORY`), else the XDG state home of the daemon's user.
public enum StateDirectory {
    public static func resolve(configured: String, environment: [String: String]) -> String {
        if !configured.isEmpty { return configured }
        // systemd lists every StateDirectory= of the unit, colon-separated; the unit names one.
        if let systemd = environment["STATE_DIRECTORY"]?.split(separator: ":").first, systemd.hasPrefix("/") {
            return String(systemd)
        }
        // As the XDG specification asks, an empty or relative value counts as unset.
        func absolute(_ name: String) -> String? {
            guard let value = environment[name], value.hasPrefix("/") else { return nil }
            return value
        }
        let base = absolute("XDG_STATE_HOME") ?? "\(absolute("HOME") ?? SocketPath.homeOfUser())/.local/state"
        return base + "/lookaheadd"
    }
}
