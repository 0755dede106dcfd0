#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Lookahead
import StepBatcher

extension DaemonConfiguration {
    /// Reads and parses the file at `path`. A file named explicitly must exist: silently running on
    /// defaults would hide a typo in `--config`.
    public static func load(path: String) throws(ConfigError) -> DaemonConfiguration {
        let bytes: [UInt8]
        do { bytes = try readFile(path) } catch { throw ConfigError(path: path, line: 0, key: "", message: error.reason) }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            let lines = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
            let bad = lines.firstIndex { String(validating: $0, as: UTF8.self) == nil } ?? 0
            throw ConfigError(path: path, line: bad + 1, key: "", message: "not valid UTF-8")
        }
        return try parse(text, path: path)
    }

    /// Parses `text`; `path` only names the source in errors.
    public static func parse(_ text: String, path: String) throws(ConfigError) -> DaemonConfiguration {
        var config = DaemonConfiguration()
        var seen: [String: Int] = [:]
        let body = text.unicodeScalars.first == "\u{FEFF}" ? Substring(text.unicodeScalars.dropFirst()) : Substring(text)
        // "\r\n" is one Character, so splitting on "\n" alone would leave CRLF files in one line.
        let lines = body.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" }
        for (index, raw) in lines.enumerated() {
            let number = index + 1
            func fail(_ key: Substring, _ message: String) -> ConfigError {
                ConfigError(path: path, line: number, key: String(key), message: message)
            }
            let line = raw.trimmingBlanks()
            if line.isEmpty || line.hasPrefix("#") { continue }
            guard let equals = line.firstIndex(of: "=") else { throw fail("", "expected 'key = value'") }
            let key = line[..<equals].trimmingBlanks()
            guard !key.isEmpty else { throw fail("", "missing key before '='") }
            guard let setting = settings.first(where: { $0.key == key }) else {
                throw ConfigError(path: path, line: number, key: String(key),
                                  message: suggestion(for: key).map { "did you mean '\($0)'?" } ?? "",
                                  isUnknownKey: true)
            }
            if let first = seen[setting.key] { throw fail(key, "set again; first set on line \(first)") }
            seen[setting.key] = number
            do {
                try setting.apply(&config, try Value(lexing: line[line.index(after: equals)...]))
            } catch {
                throw fail(key, error.reason)
            }
        }
        try config.checkCombinations(lines: seen, path: path)
        return config
    }

    /// Settings that are valid alone but not together. The error points at whichever of the two was
    /// written later, since that is the line most likely just edited.
    private func checkCombinations(lines: [String: Int], path: String) throws(ConfigError) {
        func require(_ ok: Bool, _ a: String, _ b: String, _ message: String) throws(ConfigError) {
            guard !ok else { return }
            let blamed = (lines[b] ?? 0) > (lines[a] ?? 0) ? b : a
            throw ConfigError(path: path, line: lines[blamed] ?? 0, key: blamed, message: message)
        }
        try require(maxBatchSessions <= maxSessions, "max_batch_sessions", "max_sessions",
                    "max_batch_sessions (\(maxBatchSessions)) must not exceed max_sessions (\(maxSessions))")
        try require(defaultMaxTokens <= maxTokensLimit, "default_max_tokens", "max_tokens_limit",
                    "default_max_tokens (\(defaultMaxTokens)) must not exceed max_tokens_limit (\(maxTokensLimit))")
        try require(maxJobBytes <= maxJobBytesPerUser, "max_job_bytes", "max_job_bytes_per_user",
                    "max_job_bytes (\(maxJobBytes)) must not exceed max_job_bytes_per_user (\(maxJobBytesPerUser)), or a job of the largest size could never be queued")
        if let open = httpListen.first(where: { !$0.isLoopback }) {
            try require(!apiKeyFile.isEmpty, "http_listen", "api_key_file",
                        "\(open) is reachable from other machines: set api_key_file (a bearer token) or listen on loopback only")
        }
        for server in rpcServers {
            do { _ = try RPCEndpoint(server.text, trustedNetwork: rpcTrustedNetwork) } catch {
                try require(false, "rpc_servers", "rpc_trusted_network", error.reason)
            }
        }
        try require(maxPromptTokens < contextLength, "max_prompt_tokens", "context_length",
                    "max_prompt_tokens (\(maxPromptTokens)) must be below context_length (\(contextLength)) to leave room for the answer")
    }

    /// The known key within edit distance 2, comparing case- and dash-insensitively so that
    /// `Max-Sessions` still finds `max_sessions`.
    static func suggestion(for key: Substring) -> String? {
        let typed = Array(key.lowercased().map { $0 == "-" ? "_" : $0 })
        let scored = settings.map { (key: $0.key, distance: editDistance(typed, Array($0.key))) }
        guard let best = scored.min(by: { $0.distance < $1.distance }), best.distance <= 2 else { return nil }
        return best.key
    }

    private static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }

    private static func readFile(_ path: String) throws(Invalid) -> [UInt8] {
        func failure(_ what: String) -> Invalid { Invalid("cannot \(what): \(String(cString: strerror(errno)))") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("open") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count == 0 { return bytes }
            if count < 0 {
                if errno == EINTR { continue }
                throw failure("read")
            }
            bytes += chunk[..<count]
        }
    }
}

/// A value as written: quoted values keep `#` and outer blanks, and only they know escapes.
struct Value {
    var text: String
    var quoted: Bool

    /// `raw` is everything after the `=`. Unquoted, a `#` after a blank starts a comment, so
    /// `a#b` stays a value while `a # note` does not.
    init(lexing raw: Substring) throws(Invalid) {
        let start = raw.drop { $0 == " " || $0 == "\t" }
        guard start.first == "\"" else {
            var end = raw.endIndex
            var afterBlank = false
            for index in raw.indices {
                if raw[index] == "#" && afterBlank { end = index; break }
                afterBlank = raw[index] == " " || raw[index] == "\t"
            }
            text = String(raw[..<end].trimmingBlanks())
            quoted = false
            return
        }
        var unescaped = ""
        var index = start.index(after: start.startIndex)
        while index < start.endIndex, start[index] != "\"" {
            if start[index] == "\\" {
                index = start.index(after: index)
                guard index < start.endIndex else { break }
                switch start[index] {
                case "\"": unescaped.append("\"")
                case "\\": unescaped.append("\\")
                case "n": unescaped.append("\n")
                case "t": unescaped.append("\t")
                default: throw Invalid("unknown escape '\\\(start[index])' (known: \\\" \\\\ \\n \\t)")
                }
            } else {
                unescaped.append(start[index])
            }
            index = start.index(after: index)
        }
        guard index < start.endIndex else { throw Invalid("missing closing quote") }
        let rest = start[start.index(after: index)...].trimmingBlanks()
        guard rest.isEmpty || rest.hasPrefix("#") else { throw Invalid("unexpected text after the closing quote") }
        text = unescaped
        quoted = true
    }

    func integer(_ range: ClosedRange<Int>) throws(Invalid) -> Int {
        guard let number = Int(text) else { throw Invalid("'\(text)' is not an integer") }
        guard range.contains(number) else {
            let bounds = range.upperBound == .max ? "at least \(range.lowerBound)" : "\(range.lowerBound)...\(range.upperBound)"
            throw Invalid("must be \(bounds), got \(number)")
        }
        return number
    }

    /// A number of seconds: > 0 when `positive`, else ≥ 0.
    func seconds(positive: Bool) throws(Invalid) -> Double {
        guard let x = Double(text), x.isFinite, positive ? x > 0 : x >= 0 else {
            throw Invalid("must be a number of seconds \(positive ? ">" : "≥") 0, got '\(text)'")
        }
        return x
    }

    func bool() throws(Invalid) -> Bool {
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw Invalid("'\(text)' is not a boolean (true/false, yes/no, on/off, 1/0)")
        }
    }

    func choice<T: RawRepresentable & CaseIterable>(_: T.Type) throws(Invalid) -> T where T.RawValue == String {
        guard let value = T(rawValue: text) else {
            throw Invalid("'\(text)' is not one of " + T.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return value
    }

    /// Empty keeps the default; anything else must be absolute, since the daemon's working directory
    /// is `/` under systemd and a relative path would silently mean something else by hand.
    func absolutePath() throws(Invalid) -> String {
        guard text.isEmpty || text.hasPrefix("/") else { throw Invalid("'\(text)' is not an absolute path") }
        var path = Substring(text)
        while path.count > 1, path.hasSuffix("/") { path = path.dropLast() }
        return String(path)
    }

    func socketPath() throws(Invalid) -> String {
        let path = try absolutePath()
        // sockaddr_un.sun_path is 108 bytes including the terminating NUL.
        guard path.utf8.count <= 107 else {
            throw Invalid("\(path.utf8.count) bytes is longer than the 107 a Unix socket path can hold")
        }
        return path
    }

    /// Permission bits only: setuid/setgid/sticky mean nothing on a socket.
    func octalMode() throws(Invalid) -> UInt32 {
        guard (3...4).contains(text.count), text.allSatisfy({ ("0"..."7").contains($0) }),
              let mode = UInt32(text, radix: 8), mode <= 0o777 else {
            throw Invalid("'\(text)' is not an octal permission mode like 0660")
        }
        return mode
    }

    /// Items separated by commas or blanks.
    func list() -> [String] {
        text.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }).map(String.init)
    }

    /// The list read by one of the engine's own parsers, its refusal as this key's.
    func engine<T>(_ parse: ([String]) throws(EngineError) -> T) throws(Invalid) -> T {
        do throws(EngineError) { return try parse(list()) } catch { throw Invalid(error.reason) }
    }

    /// Endpoints separated by commas or blanks, each once.
    func httpEndpoints() throws(Invalid) -> [HTTPEndpoint] {
        var endpoints: [HTTPEndpoint] = []
        for item in list() {
            let endpoint: HTTPEndpoint
            do { endpoint = try HTTPEndpoint(parsing: item) } catch { throw Invalid(error.description) }
            guard !endpoints.contains(endpoint) else { throw Invalid("\(endpoint) is listed twice") }
            endpoints.append(endpoint)
        }
        return endpoints
    }

    func stepDelimiter() throws(Invalid) -> String {
        guard !text.isEmpty else { throw Invalid("must not be empty") }
        // Unquoted, `\n\n` is four characters that never occur in model output: every step would
        // then end at the token cap without any error to say why.
        guard quoted || !text.contains("\\") else { throw Invalid("escapes such as \\n only work inside double quotes") }
        return text
    }

    func judgeModel() throws(Invalid) -> JudgeModel {
        guard let model = JudgeModel(parsing: text) else { throw Invalid("must be draft, target or a GGUF path") }
        return model
    }
}

struct Setting: Sendable {
    var key: String
    var apply: @Sendable (inout DaemonConfiguration, Value) throws(Invalid) -> Void

    init(_ key: String, _ apply: @escaping @Sendable (inout DaemonConfiguration, Value) throws(Invalid) -> Void) {
        self.key = key
        self.apply = apply
    }
}

extension DaemonConfiguration {
    /// Every key the file may set, in the order etc/lookaheadd.conf documents them.
    static let settings: [Setting] = [
        Setting("socket") { c, v throws(Invalid) in c.socket = try v.socketPath() },
        Setting("socket_mode") { c, v throws(Invalid) in c.socketMode = try v.octalMode() },
        Setting("state_dir") { c, v throws(Invalid) in c.stateDirectory = try v.absolutePath() },
        Setting("http_listen") { c, v throws(Invalid) in c.httpListen = try v.httpEndpoints() },
        Setting("api_key_file") { c, v throws(Invalid) in c.apiKeyFile = try v.absolutePath() },

        Setting("model_dir") { c, v throws(Invalid) in c.modelDirectory = try v.absolutePath() },
        Setting("target_model") { c, v in c.targetModel = v.text },
        Setting("draft_model") { c, v in c.draftModel = v.text },
        Setting("embed_model") { c, v in c.embedModel = v.text },

        Setting("verifier") { c, v throws(Invalid) in
            // random:P is a benchmark's verifier (`bench --verifier`), not a service's.
            guard let kind = VerifierKind(rawValue: v.text), kind != .random else {
                throw Invalid("'\(v.text)' is not one of exact, normalized, embedding, judge")
            }
            c.verifier = kind
        },
        Setting("judge_model") { c, v throws(Invalid) in c.judgeModel = try v.judgeModel() },
        Setting("embedding_threshold") { c, v throws(Invalid) in
            guard let x = Float(v.text), x > 0, x <= 1 else { throw Invalid("must be a number in (0, 1], got '\(v.text)'") }
            c.embeddingThreshold = x
        },
        Setting("numeric_guard") { c, v throws(Invalid) in c.numericGuard = try v.bool() },

        Setting("threads") { c, v throws(Invalid) in c.threads = try v.integer(1...256) },
        Setting("gpu_layers") { c, v throws(Invalid) in c.gpuLayers = Int32(try v.integer(-1...Int(Int32.max))) },
        Setting("rpc_servers") { c, v throws(Invalid) in
            // Whether a host may be other than loopback depends on rpc_trusted_network: checked with it.
            c.rpcServers = try v.engine { items throws(EngineError) in try RPCEndpoint.list(items, trustedNetwork: true) }
        },
        Setting("rpc_trusted_network") { c, v throws(Invalid) in c.rpcTrustedNetwork = try v.bool() },
        Setting("rpc_models") { c, v throws(Invalid) in c.rpcModels = try v.engine(ModelRole.set) },
        Setting("tensor_split") { c, v throws(Invalid) in c.tensorSplit = try v.engine(EngineConfig.shares) },
        Setting("context_length") { c, v throws(Invalid) in c.contextLength = try v.integer(256...Int(Int32.max)) },
        Setting("batch_size") { c, v throws(Invalid) in c.batchSize = try v.integer(32...Int(Int32.max)) },
        Setting("batch_invariant") { c, v throws(Invalid) in c.batchInvariant = try v.bool() },

        // llama.cpp's n_seq_max is at most 256 and every session needs one sequence.
        Setting("max_sessions") { c, v throws(Invalid) in c.maxSessions = try v.integer(1...256) },
        Setting("max_batch_sessions") { c, v throws(Invalid) in c.maxBatchSessions = try v.integer(0...256) },
        Setting("prefix_cache") { c, v throws(Invalid) in c.prefixCache = try v.bool() },
        Setting("prefix_cache_max_cells") { c, v throws(Invalid) in
            c.prefixCacheMaxCells = v.text.isEmpty ? nil : try v.integer(1...Int(Int32.max))
        },

        Setting("default_mode") { c, v throws(Invalid) in c.defaultMode = try v.choice(Mode.self) },
        Setting("default_gamma") { c, v throws(Invalid) in c.defaultGamma = try v.integer(0...16) },
        Setting("default_width") { c, v throws(Invalid) in c.defaultWidth = try v.integer(1...2) },
        Setting("default_max_tokens") { c, v throws(Invalid) in c.defaultMaxTokens = try v.integer(1...Int.max) },
        Setting("max_tokens_limit") { c, v throws(Invalid) in c.maxTokensLimit = try v.integer(1...Int.max) },
        Setting("draft_tokens_per_tick") { c, v throws(Invalid) in c.draftTokensPerTick = try v.integer(1...16) },
        Setting("proposal_tokens") { c, v throws(Invalid) in c.proposalTokens = try v.integer(0...32) },
        Setting("prefill_chunk_tokens") { c, v throws(Invalid) in c.prefillChunkTokens = try v.integer(1...Int(Int32.max)) },
        Setting("step_tokens") { c, v throws(Invalid) in c.stepTokens = try v.integer(1...Int.max) },
        Setting("step_delimiter") { c, v throws(Invalid) in c.stepDelimiter = try v.stepDelimiter() },

        Setting("max_frame_bytes") { c, v throws(Invalid) in c.maxFrameBytes = try v.integer(1024...(1 << 30)) },
        Setting("max_prompt_tokens") { c, v throws(Invalid) in c.maxPromptTokens = try v.integer(1...Int.max) },
        Setting("max_connections") { c, v throws(Invalid) in c.maxConnections = try v.integer(1...65536) },
        Setting("max_connections_per_user") { c, v throws(Invalid) in c.maxConnectionsPerUser = try v.integer(1...65536) },
        Setting("max_inflight_per_connection") { c, v throws(Invalid) in c.maxInflightPerConnection = try v.integer(1...65536) },
        Setting("max_queued_sessions") { c, v throws(Invalid) in c.maxQueuedSessions = try v.integer(1...1_000_000) },
        Setting("max_unsent_bytes") { c, v throws(Invalid) in c.maxUnsentBytes = try v.integer(4096...(1 << 30)) },
        Setting("stalled_reader_seconds") { c, v throws(Invalid) in c.stalledReaderSeconds = try v.seconds(positive: true) },
        Setting("frame_timeout_seconds") { c, v throws(Invalid) in c.frameTimeoutSeconds = try v.seconds(positive: true) },
        Setting("idle_timeout_seconds") { c, v throws(Invalid) in c.idleTimeoutSeconds = try v.seconds(positive: false) },

        Setting("drain_window") { c, v throws(Invalid) in
            c.drainWindow = v.text.isEmpty ? nil : try DrainWindow(parsing: v.text)
        },
        Setting("max_job_bytes") { c, v throws(Invalid) in c.maxJobBytes = try v.integer(1024...(1 << 30)) },
        Setting("max_jobs_per_user") { c, v throws(Invalid) in c.maxJobsPerUser = try v.integer(1...Int.max) },
        Setting("max_job_lines_per_user") { c, v throws(Invalid) in c.maxJobLinesPerUser = try v.integer(1...Int.max) },
        Setting("max_job_bytes_per_user") { c, v throws(Invalid) in c.maxJobBytesPerUser = try v.integer(1024...Int.max) },
        Setting("job_retention_days") { c, v throws(Invalid) in c.jobRetentionDays = try v.integer(0...36500) },
        Setting("shutdown_grace_seconds") { c, v throws(Invalid) in c.shutdownGraceSeconds = try v.seconds(positive: false) },

        Setting("log_level") { c, v throws(Invalid) in c.logLevel = try v.choice(LogLevel.self) },
    ]
}

extension Substring {
    func trimmingBlanks() -> Substring {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isBlank($0) }), let last = lastIndex(where: { !isBlank($0) }) else {
            return self[endIndex...]
        }
        return self[first...last]
    }
}

extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
