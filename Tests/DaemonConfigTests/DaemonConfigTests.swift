import Foundation
import Testing
import Lookahead
import StepBatcher
@testable import DaemonConfig

private func parse(_ text: String) throws(ConfigError) -> DaemonConfiguration {
    try DaemonConfiguration.parse(text, path: "test.conf")
}

private func failure(_ text: String, path: String = "test.conf") -> ConfigError? {
    do {
        _ = try DaemonConfiguration.parse(text, path: path)
        return nil
    } catch {
        return error
    }
}

private func defaults(_ change: (inout DaemonConfiguration) -> Void) -> DaemonConfiguration {
    var config = DaemonConfiguration()
    change(&config)
    return config
}

@Suite struct ShippedFileTests {
    static let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("etc/lookaheadd.conf").path

    @Test func parsesToTheDefaults() throws {
        #expect(try DaemonConfiguration.load(path: Self.path) == DaemonConfiguration())
    }

    /// The shipped file is all comments, so parsing it alone proves nothing about the values it
    /// documents: uncomment every `#key = value` line and those must be the defaults too.
    @Test func documentsEveryKeyOnceWithItsDefault() throws {
        let text = try String(contentsOfFile: Self.path, encoding: .utf8)
        var documented: [String] = []
        let uncommented = text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> Substring in
            // Prose is `# text`; a setting is `#key = value`, so `#` then a letter is a setting.
            guard line.hasPrefix("#"), let next = line.dropFirst().first, next.isLetter else { return line }
            documented.append(String(line.dropFirst().prefix { $0 != " " && $0 != "=" }))
            return line.dropFirst()
        }.joined(separator: "\n")

        #expect(documented == DaemonConfiguration.settings.map(\.key))
        #expect(try DaemonConfiguration.parse(uncommented, path: Self.path) == DaemonConfiguration())
    }
}

@Suite struct KeyTests {
    struct Case: CustomTestStringConvertible, Sendable {
        var key: String
        var good: String
        var expected: @Sendable (inout DaemonConfiguration) -> Void
        var bad: String
        var reason: String
        var testDescription: String { key }
    }

    static let cases: [Case] = [
        Case(key: "socket", good: "/run/x/x.sock", expected: { $0.socket = "/run/x/x.sock" },
             bad: "x.sock", reason: "'x.sock' is not an absolute path"),
        Case(key: "socket_mode", good: "0600", expected: { $0.socketMode = 0o600 },
             bad: "0680", reason: "'0680' is not an octal permission mode like 0660"),
        Case(key: "state_dir", good: "/var/lib/l/", expected: { $0.stateDirectory = "/var/lib/l" },
             bad: "state", reason: "'state' is not an absolute path"),
        Case(key: "http_listen", good: "/run/l/http.sock, 127.0.0.1:8080 [::1]:8081",
             expected: { $0.httpListen = [.unix(path: "/run/l/http.sock"), .tcp(host: "127.0.0.1", port: 8080), .tcp(host: "::1", port: 8081)] },
             bad: "localhost:99999", reason: "'localhost:99999' is neither an absolute socket path nor HOST:PORT with a port in 1...65535"),
        Case(key: "api_key_file", good: "/etc/lookaheadd/api-key", expected: { $0.apiKeyFile = "/etc/lookaheadd/api-key" },
             bad: "api-key", reason: "'api-key' is not an absolute path"),
        Case(key: "model_dir", good: "/models", expected: { $0.modelDirectory = "/models" },
             bad: "models", reason: "'models' is not an absolute path"),
        Case(key: "target_model", good: "t.gguf", expected: { $0.targetModel = "t.gguf" },
             bad: "\"t.gguf", reason: "missing closing quote"),
        Case(key: "draft_model", good: "/m/d.gguf", expected: { $0.draftModel = "/m/d.gguf" },
             bad: "\"d\" .gguf", reason: "unexpected text after the closing quote"),
        Case(key: "embed_model", good: "\"e #1.gguf\"", expected: { $0.embedModel = "e #1.gguf" },
             bad: "\"e\\x\"", reason: "unknown escape '\\x'"),
        Case(key: "verifier", good: "judge", expected: { $0.verifier = .judge },
             bad: "cosine", reason: "'cosine' is not one of exact, normalized, embedding, judge"),
        Case(key: "judge_model", good: "target", expected: { $0.judgeModel = .target },
             bad: "\"\"", reason: "must be draft, target or a GGUF path"),
        Case(key: "embedding_threshold", good: "0.85", expected: { $0.embeddingThreshold = 0.85 },
             bad: "0", reason: "must be a number in (0, 1], got '0'"),
        Case(key: "numeric_guard", good: "off", expected: { $0.numericGuard = false },
             bad: "maybe", reason: "'maybe' is not a boolean"),
        Case(key: "threads", good: "16", expected: { $0.threads = 16 },
             bad: "257", reason: "must be 1...256, got 257"),
        Case(key: "gpu_layers", good: "-1", expected: { $0.gpuLayers = -1 },
             bad: "-2", reason: "must be -1...2147483647, got -2"),
        Case(key: "rpc_servers", good: "127.0.0.1:50052, localhost:50053",
             expected: { $0.rpcServers = [try! RPCEndpoint("127.0.0.1:50052", trustedNetwork: false),
                                          try! RPCEndpoint("localhost:50053", trustedNetwork: false)] },
             bad: "127.0.0.1", reason: "'127.0.0.1': not host:port (as 192.168.1.20:50052)"),
        Case(key: "rpc_trusted_network", good: "yes", expected: { $0.rpcTrustedNetwork = true },
             bad: "maybe", reason: "'maybe' is not a boolean"),
        Case(key: "rpc_models", good: "target, draft", expected: { $0.rpcModels = [.target, .draft] },
             bad: "embedding", reason: "'embedding' is not target or draft"),
        Case(key: "tensor_split", good: "3, 1", expected: { $0.tensorSplit = [3, 1] },
             bad: "-1", reason: "'-1' is not a non-negative number"),
        Case(key: "context_length", good: "32768", expected: { $0.contextLength = 32768 },
             bad: "255", reason: "must be 256...2147483647, got 255"),
        Case(key: "batch_size", good: "2048", expected: { $0.batchSize = 2048 },
             bad: "big", reason: "'big' is not an integer"),
        Case(key: "batch_invariant", good: "true", expected: { $0.batchInvariant = true },
             bad: "sometimes", reason: "'sometimes' is not a boolean"),
        Case(key: "max_sessions", good: "51", expected: { $0.maxSessions = 51 },
             bad: "0", reason: "must be 1...256, got 0"),
        Case(key: "max_batch_sessions", good: "0", expected: { $0.maxBatchSessions = 0 },
             bad: "-1", reason: "must be 0...256, got -1"),
        Case(key: "prefix_cache", good: "false", expected: { $0.prefixCache = false },
             bad: "lru", reason: "'lru' is not a boolean"),
        Case(key: "prefix_cache_max_cells", good: "2048", expected: { $0.prefixCacheMaxCells = 2048 },
             bad: "0", reason: "must be 1...2147483647, got 0"),
        Case(key: "default_mode", good: "ar", expected: { $0.defaultMode = .ar },
             bad: "lookahead+ar", reason: "'lookahead+ar' is not one of ar, sd, lookahead, lookahead+sd"),
        Case(key: "default_gamma", good: "0", expected: { $0.defaultGamma = 0 },
             bad: "17", reason: "must be 0...16, got 17"),
        Case(key: "default_width", good: "2", expected: { $0.defaultWidth = 2 },
             bad: "3", reason: "must be 1...2, got 3"),
        Case(key: "default_max_tokens", good: "1", expected: { $0.defaultMaxTokens = 1 },
             bad: "0", reason: "must be at least 1, got 0"),
        Case(key: "max_tokens_limit", good: "100000", expected: { $0.maxTokensLimit = 100_000 },
             bad: "1.5", reason: "'1.5' is not an integer"),
        Case(key: "draft_tokens_per_tick", good: "16", expected: { $0.draftTokensPerTick = 16 },
             bad: "0", reason: "must be 1...16, got 0"),
        Case(key: "proposal_tokens", good: "0", expected: { $0.proposalTokens = 0 },
             bad: "33", reason: "must be 0...32, got 33"),
        Case(key: "prefill_chunk_tokens", good: "64", expected: { $0.prefillChunkTokens = 64 },
             bad: "0", reason: "must be 1...2147483647, got 0"),
        Case(key: "step_tokens", good: "64", expected: { $0.stepTokens = 64 },
             bad: "0", reason: "must be at least 1, got 0"),
        Case(key: "step_delimiter", good: "\"\\n\"", expected: { $0.stepDelimiter = "\n" },
             bad: "\\n\\n", reason: "escapes such as \\n only work inside double quotes"),
        Case(key: "max_frame_bytes", good: "1024", expected: { $0.maxFrameBytes = 1024 },
             bad: "1073741825", reason: "must be 1024...1073741824, got 1073741825"),
        Case(key: "max_prompt_tokens", good: "100", expected: { $0.maxPromptTokens = 100 },
             bad: "0", reason: "must be at least 1, got 0"),
        Case(key: "max_connections", good: "1", expected: { $0.maxConnections = 1 },
             bad: "0", reason: "must be 1...65536, got 0"),
        Case(key: "max_connections_per_user", good: "8", expected: { $0.maxConnectionsPerUser = 8 },
             bad: "65537", reason: "must be 1...65536, got 65537"),
        Case(key: "max_inflight_per_connection", good: "1", expected: { $0.maxInflightPerConnection = 1 },
             bad: "0", reason: "must be 1...65536, got 0"),
        Case(key: "max_queued_sessions", good: "10", expected: { $0.maxQueuedSessions = 10 },
             bad: "0", reason: "must be 1...1000000, got 0"),
        Case(key: "max_unsent_bytes", good: "4096", expected: { $0.maxUnsentBytes = 4096 },
             bad: "4095", reason: "must be 4096...1073741824, got 4095"),
        Case(key: "stalled_reader_seconds", good: "0.5", expected: { $0.stalledReaderSeconds = 0.5 },
             bad: "0", reason: "must be a number of seconds > 0, got '0'"),
        Case(key: "frame_timeout_seconds", good: "3", expected: { $0.frameTimeoutSeconds = 3 },
             bad: "never", reason: "must be a number of seconds > 0, got 'never'"),
        Case(key: "idle_timeout_seconds", good: "0", expected: { $0.idleTimeoutSeconds = 0 },
             bad: "-5", reason: "must be a number of seconds ≥ 0, got '-5'"),
        Case(key: "drain_window", good: "22:00-07:00",
             expected: { $0.drainWindow = DrainWindow(fromMinutes: 22 * 60, toMinutes: 7 * 60) },
             bad: "22:00-24:00", reason: "'22:00-24:00' is not HH:MM-HH:MM"),
        Case(key: "max_job_bytes", good: "1024", expected: { $0.maxJobBytes = 1024 },
             bad: "1023", reason: "must be 1024...1073741824, got 1023"),
        Case(key: "max_jobs_per_user", good: "1", expected: { $0.maxJobsPerUser = 1 },
             bad: "0", reason: "must be at least 1, got 0"),
        Case(key: "max_job_lines_per_user", good: "5000000", expected: { $0.maxJobLinesPerUser = 5_000_000 },
             bad: "many", reason: "'many' is not an integer"),
        Case(key: "max_job_bytes_per_user", good: "1073741824", expected: { $0.maxJobBytesPerUser = 1 << 30 },
             bad: "1023", reason: "must be at least 1024, got 1023"),
        Case(key: "job_retention_days", good: "0", expected: { $0.jobRetentionDays = 0 },
             bad: "-1", reason: "must be 0...36500, got -1"),
        Case(key: "shutdown_grace_seconds", good: "2.5", expected: { $0.shutdownGraceSeconds = 2.5 },
             bad: "-1", reason: "must be a number of seconds ≥ 0, got '-1'"),
        Case(key: "log_level", good: "debug", expected: { $0.logLevel = .debug },
             bad: "verbose", reason: "'verbose' is not one of debug, info, notice, warning, error"),
    ]

    @Test func everyKeyHasACase() {
        #expect(Self.cases.map(\.key) == DaemonConfiguration.settings.map(\.key))
    }

    @Test(arguments: cases) func goodValue(_ c: Case) throws {
        #expect(try parse("\(c.key) = \(c.good)") == defaults(c.expected))
    }

    /// Two lines before the key, so a line number of 1 or 0 would show.
    @Test(arguments: cases) func badValue(_ c: Case) throws {
        let error = try #require(failure("# header\n\n\(c.key) = \(c.bad)", path: "/etc/lookaheadd/x.conf"))
        #expect(error.path == "/etc/lookaheadd/x.conf")
        #expect(error.line == 3)
        #expect(error.key == c.key)
        #expect(error.message.contains(c.reason), "\(error)")
        #expect(error.description.hasPrefix("/etc/lookaheadd/x.conf:3: key '\(c.key)': "), "\(error)")
    }

    @Test func booleanSpellings() throws {
        for (text, value) in [("true", true), ("yes", true), ("on", true), ("1", true),
                              ("false", false), ("no", false), ("OFF", false), ("0", false)] {
            #expect(try parse("numeric_guard = \(text)").numericGuard == value, "\(text)")
        }
    }

    @Test func judgeModelPath() throws {
        #expect(try parse("judge_model = judge.gguf").judgeModel == .path("judge.gguf"))
    }

    @Test func emptyValuesKeepTheDefaults() throws {
        #expect(try parse("socket =\nmodel_dir = \ntarget_model = \"\"\ndrain_window =") == DaemonConfiguration())
    }

    @Test func socketPathMustFitSunPath() throws {
        let path = "/run/" + String(repeating: "s", count: 102)
        #expect(try parse("socket = \(path)").socket == path)
        let error = try #require(failure("socket = \(path)s"))
        #expect(error.message == "108 bytes is longer than the 107 a Unix socket path can hold")
    }
}

@Suite struct SyntaxTests {
    @Test func errorNamesPathLineAndKey() throws {
        let error = try #require(failure("threads = 2\n\n\n\ngpu_layers = all", path: "/etc/lookaheadd/lookaheadd.conf"))
        #expect(error == ConfigError(path: "/etc/lookaheadd/lookaheadd.conf", line: 5, key: "gpu_layers",
                                     message: "'all' is not an integer"))
        #expect(error.description == "/etc/lookaheadd/lookaheadd.conf:5: key 'gpu_layers': 'all' is not an integer")
    }

    @Test func unknownKeySuggestsTheNearestKnownOne() throws {
        #expect(failure("\nthread = 2")?.description == "test.conf:2: unknown key 'thread'; did you mean 'threads'?")
        #expect(failure("Max-Sessions = 2")?.description
            == "test.conf:1: unknown key 'Max-Sessions'; did you mean 'max_sessions'?")
        #expect(failure("verifyer = exact")?.description == "test.conf:1: unknown key 'verifyer'; did you mean 'verifier'?")
    }

    @Test func unknownKeyFarFromAnyKnownOneHasNoSuggestion() throws {
        let error = try #require(failure("peer_hosts = a:1"))
        #expect(error.isUnknownKey && error.key == "peer_hosts" && error.line == 1)
        #expect(error.description == "test.conf:1: unknown key 'peer_hosts'")
    }

    @Test func repeatedKeyNamesBothLines() throws {
        let error = try #require(failure("threads = 2\n# more\nthreads = 3"))
        #expect(error.line == 3 && error.key == "threads")
        #expect(error.description == "test.conf:3: key 'threads': set again; first set on line 1")
    }

    @Test func lineWithoutEqualsSign() throws {
        #expect(failure("threads = 2\nthreads 4")?.description == "test.conf:2: expected 'key = value'")
        #expect(failure(" = 4")?.description == "test.conf:1: missing key before '='")
    }

    @Test func comments() throws {
        let text = """
            # a comment
               # an indented comment
            \t
            socket = /run/a#b
            state_dir = /var/lib/l # trailing comment
            model_dir = /m\t# after a tab
            log_level=warning#not a comment, so a bad value
            """
        let error = try #require(failure(text))
        #expect(error.line == 7 && error.message == "'warning#not a comment, so a bad value' is not one of debug, info, notice, warning, error")
        let config = try parse(text.replacingOccurrences(of: "log_level=warning#not a comment, so a bad value", with: ""))
        #expect(config == defaults { $0.socket = "/run/a#b"; $0.stateDirectory = "/var/lib/l"; $0.modelDirectory = "/m" })
    }

    @Test func quotedValues() throws {
        let config = try parse(#"""
            target_model = "  my # model.gguf  "   # the blanks and the # are kept
            draft_model = "a\"b\\c"
            embed_model="x"#comment
            step_delimiter = "\n\t###"
            threads = "8"
            """#)
        #expect(config.targetModel == "  my # model.gguf  ")
        #expect(config.draftModel == #"a"b\c"#)
        #expect(config.embedModel == "x")
        #expect(config.stepDelimiter == "\n\t###")
        #expect(config.threads == 8)
    }

    @Test func crlfLinesAndByteOrderMark() throws {
        let config = try parse("\u{FEFF}threads = 3\r\n# c\r\nlog_level = error\r\n")
        #expect(config == defaults { $0.threads = 3; $0.logLevel = .error })
        #expect(failure("\u{FEFF}# c\r\nthreads = x\r\n")?.line == 2)
    }

    @Test func settingsThatConflictBlameTheLaterLine() throws {
        #expect(failure("max_batch_sessions = 5")?.description
            == "test.conf:1: key 'max_batch_sessions': max_batch_sessions (5) must not exceed max_sessions (4)")
        #expect(failure("max_batch_sessions = 2\nmax_sessions = 1")?.description
            == "test.conf:2: key 'max_sessions': max_batch_sessions (2) must not exceed max_sessions (1)")
        #expect(failure("max_tokens_limit = 100\n\ndefault_max_tokens = 200")?.line == 3)
        #expect(failure("max_job_bytes_per_user = 1048576")?.description
            == "test.conf:1: key 'max_job_bytes_per_user': max_job_bytes (67108864) must not exceed max_job_bytes_per_user (1048576), or a job of the largest size could never be queued")
        #expect(try parse("max_job_bytes = 1048576\nmax_job_bytes_per_user = 1048576").maxJobBytesPerUser == 1 << 20)
        #expect(failure("max_tokens_limit = 100")?.key == "max_tokens_limit")
        #expect(failure("max_prompt_tokens = 8192")?.message
            == "max_prompt_tokens (8192) must be below context_length (8192) to leave room for the answer")
        #expect(try parse("context_length = 16384\nmax_prompt_tokens = 8192").maxPromptTokens == 8192)
        #expect(failure("http_listen = 0.0.0.0:8080")?.description
            == "test.conf:1: key 'http_listen': 0.0.0.0:8080 is reachable from other machines: set api_key_file (a bearer token) or listen on loopback only")
        #expect(try parse("http_listen = 0.0.0.0:8080\napi_key_file = /k").apiKeyFile == "/k")
        #expect(try parse("http_listen = localhost:8080, 127.0.0.2:9").httpListen.allSatisfy(\.isLoopback))
        #expect(failure("http_listen = example.com:80")?.message.contains("not an IP address or localhost") == true)
        #expect(failure("http_listen = 127.0.0.1:1, 127.0.0.1:1")?.message == "127.0.0.1:1 is listed twice")
    }
}

@Suite struct RPCServerTests {
    @Test func serversAreLoopbackUnlessTheNetworkIsTrusted() throws {
        #expect(try parse("rpc_servers = 127.0.0.1:50052, localhost:50053 [::1]:7").rpcServers.map(\.text)
            == ["127.0.0.1:50052", "localhost:50053", "[::1]:7"])
        let far = try #require(failure("rpc_servers = 10.0.0.2:50052"))
        #expect(far.key == "rpc_servers" && far.line == 1)
        #expect(far.message.hasPrefix("'10.0.0.2:50052': not this host's loopback") && far.message.contains("rpc_trusted_network = true"))
        #expect(try parse("rpc_servers = 10.0.0.2:50052\nrpc_trusted_network = true").rpcServers.map(\.host) == ["10.0.0.2"])
        // The later of the two lines is blamed.
        #expect(failure("rpc_trusted_network = false\nrpc_servers = 10.0.0.2:1")?.line == 2)
        #expect(failure("rpc_servers = 10.0.0.2:1\nrpc_trusted_network = no")?.key == "rpc_trusted_network")
    }

    @Test func badServersAndSharesAreNamed() throws {
        #expect(failure("rpc_servers = 127.0.0.1")?.message == "'127.0.0.1': not host:port (as 192.168.1.20:50052)")
        #expect(failure("rpc_servers = 127.0.0.1:70000")?.message == "'127.0.0.1:70000': not host:port (as 192.168.1.20:50052)")
        #expect(failure("rpc_servers = :5")?.message == "':5': no host before the port")
        #expect(failure("rpc_servers = 127.0.0.1:1 127.0.0.1:1")?.message == "127.0.0.1:1 is listed twice")
        #expect(try parse("tensor_split = 3, 1").tensorSplit == [3, 1])
        #expect(try parse("tensor_split =").tensorSplit == nil)
        #expect(failure("tensor_split = 1,x")?.message == "'x' is not a non-negative number")
        #expect(failure("tensor_split = 0,0")?.message == "at least one share must be above 0")
        let engine = try parse("rpc_servers = 127.0.0.1:9\ntensor_split = 1,2\ngpu_layers = 10").engineConfig()
        #expect(engine.rpcServers.map(\.text) == ["127.0.0.1:9"] && engine.tensorSplit == [1, 2] && engine.gpuLayers == 10)
    }
}

@Suite struct DrainWindowTests {
    private func window(_ text: String) throws -> DrainWindow? {
        try parse("drain_window = \(text)").drainWindow
    }

    @Test func parses() throws {
        #expect(try window("22:00-07:00") == DrainWindow(fromMinutes: 1320, toMinutes: 420))
        #expect(try window("7:05 - 8:30") == DrainWindow(fromMinutes: 425, toMinutes: 510))
        #expect(try window("00:00-23:59") == DrainWindow(fromMinutes: 0, toMinutes: 1439))
        #expect(try window("\"\"") == nil)
        #expect(try window("22:00-07:00")?.description == "22:00-07:00")
        #expect(DrainWindow(fromMinutes: 425, toMinutes: 510).description == "07:05-08:30")
    }

    @Test(arguments: ["24:00-07:00", "22:60-07:00", "22:00", "22-07", "22:0-07:00", "ab:cd-07:00",
                      "22:00-07:00-08:00", "-1:00-07:00", "+1:00-07:00", "123:00-07:00"])
    func refuses(_ text: String) throws {
        let error = try #require(failure("drain_window = \(text)"))
        #expect(error.description == "test.conf:1: key 'drain_window': '\(text)' is not HH:MM-HH:MM (hours 00-23, minutes 00-59)")
    }

    @Test func refusesAnEmptySpan() throws {
        #expect(failure("drain_window = 22:00-22:00")?.message
            == "start and end are equal; leave the value empty to drain at any time")
    }

    @Test func containsWithinADay() {
        let office = DrainWindow(fromMinutes: 9 * 60 + 30, toMinutes: 17 * 60)
        #expect(office.contains(minuteOfDay: 570) && office.contains(minuteOfDay: 1019))
        #expect(!office.contains(minuteOfDay: 569) && !office.contains(minuteOfDay: 1020) && !office.contains(minuteOfDay: 0))
    }

    @Test func containsAcrossMidnight() {
        let night = DrainWindow(fromMinutes: 22 * 60, toMinutes: 7 * 60)
        for minute in [1320, 1439, 0, 419] { #expect(night.contains(minuteOfDay: minute), "\(minute)") }
        for minute in [420, 720, 1319] { #expect(!night.contains(minuteOfDay: minute), "\(minute)") }
    }
}

@Suite struct DerivedConfigTests {
    @Test func relativeModelPathsResolveAgainstModelDir() throws {
        let engine = try parse("""
            model_dir = /srv/models/
            target_model = qwen/target-1.5b.gguf
            draft_model = /opt/draft.gguf
            verifier = judge
            judge_model = judges/j.gguf
            """).engineConfig()
        #expect(engine.targetPath == "/srv/models/qwen/target-1.5b.gguf")
        #expect(engine.draftPath == "/opt/draft.gguf")
        #expect(engine.embedPath == "/srv/models/embed.gguf")
        #expect(engine.verifier == .judge(model: .path("/srv/models/judges/j.gguf"), margin: VerifierSpec.defaultMargin))
    }

    @Test func thePrefixCacheIsOnAndAtMostTheContext() throws {
        #expect(DaemonConfiguration().prefixCacheCells == DaemonConfiguration().contextLength)
        #expect(try parse("context_length = 4096\nmax_prompt_tokens = 1000\nprefix_cache_max_cells = 99999").prefixCacheCells == 4096)
        #expect(try parse("prefix_cache_max_cells = 1000").prefixCacheCells == 1000)
        #expect(try parse("prefix_cache_max_cells =").prefixCacheCells == DaemonConfiguration().contextLength)
        #expect(try parse("prefix_cache = off\nprefix_cache_max_cells = 1000").prefixCacheCells == nil)
    }

    @Test func emptyModelDirIsTheEngineDefault() {
        let engine = DaemonConfiguration().engineConfig()
        #expect(engine.targetPath == EngineConfig.defaultModelDirectory + "/target.gguf")
        #expect(engine.verifier == .embedding(threshold: VerifierSpec.defaultThreshold))
        #expect(DaemonConfiguration().judgeModel == .draft)
    }

    @Test func engineSettings() throws {
        let engine = try parse("""
            model_dir = /m
            verifier = embedding
            judge_model = target
            embedding_threshold = 0.9
            numeric_guard = no
            threads = 8
            gpu_layers = 99
            context_length = 16384
            batch_size = 1024
            max_sessions = 8
            default_gamma = 3
            default_width = 2
            """).engineConfig()
        var expected = EngineConfig(modelDirectory: "/m")
        expected.verifier = .embedding(threshold: 0.9)
        expected.numericGuard = false
        expected.threads = 8
        expected.gpuLayers = 99
        expected.contextLength = 16384
        expected.batchSize = 1024
        expected.sequences = 8 * (1 + 3 * 2)
        #expect(engine == expected)
    }

    @Test func sequencesAreCappedAtLlamasLimit() throws {
        #expect(DaemonConfiguration().engineConfig().sequences == 20)
        #expect(try parse("max_sessions = 60").engineConfig().sequences == 256)
        // Batch invariance parks removed cells under one more id.
        #expect(try parse("max_sessions = 60\nbatch_invariant = true").engineConfig().sequences == 255)
    }

    @Test func sessionDefaults() throws {
        let session = try parse("""
            default_mode = sd
            default_gamma = 2
            default_width = 2
            default_max_tokens = 300
            draft_tokens_per_tick = 3
            proposal_tokens = 8
            prefill_chunk_tokens = 128
            step_tokens = 50
            step_delimiter = "\\n"
            """).sessionDefaults()
        var expected = SessionConfig(mode: .sd)
        expected.gamma = 2
        expected.width = 2
        expected.maxTokens = 300
        expected.draftTokensPerTick = 3
        expected.proposalTokens = 8
        expected.prefillChunk = 128
        expected.rules.maxTokens = 50
        expected.rules.delimiter = "\n"
        #expect(session == expected)
    }

    /// The file's defaults are the algorithm's own, and valid as a request configuration.
    @Test func defaultSessionIsSessionConfigsDefault() throws {
        let session = DaemonConfiguration().sessionDefaults()
        #expect(session == SessionConfig())
        try session.validate()
    }
}

@Suite struct LoadTests {
    private func temporaryFile(_ bytes: [UInt8]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lookaheadd-\(UUID().uuidString).conf").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func missingFileIsAnErrorNamingThePath() throws {
        let path = "/nonexistent/lookaheadd.conf"
        do {
            _ = try DaemonConfiguration.load(path: path)
            Issue.record("loaded a missing file")
        } catch {
            #expect(error.line == 0)
            #expect(error.description == "/nonexistent/lookaheadd.conf: cannot open: No such file or directory")
        }
    }

    @Test func readsAFile() throws {
        let path = try temporaryFile(Array("threads = 5\n".utf8))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try DaemonConfiguration.load(path: path).threads == 5)
    }

    @Test func invalidUTF8NamesTheLine() throws {
        let path = try temporaryFile(Array("threads = 5\n".utf8) + [0x23, 0xFF, 0x0A])
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: ConfigError(path: path, line: 2, key: "", message: "not valid UTF-8")) {
            try DaemonConfiguration.load(path: path)
        }
    }
}
