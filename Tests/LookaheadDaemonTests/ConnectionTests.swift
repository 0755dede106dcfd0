import DaemonConfig
import Dispatch
import Llama
import Lookahead
import LookaheadProtocol
import NIOCore
import NIOEmbedded
import ScriptedEngines
import StepBatcher
import Synchronization
import Testing
import TestSupport
@testable import LookaheadDaemon
#if canImport(Glibc)
import Glibc
#endif

/// A daemon's methods over scripted engines: what a connection talks to, without a model.
final class ScriptedDaemon {
    static let prompt = "question : what is it ? |"
    let batcher: Batcher
    let methods: Methods
    let state: TempDir
    /// Prompts tokenised so far (the tokeniser runs on whatever thread asks).
    let tokenised = Tally()

    /// `script`: the steps the model writes (WordText: "|" ends a step); by default `steps`
    /// numbered steps and "done".
    init(_ config: DaemonConfiguration = DaemonConfiguration(), steps: Int = 4, contextLength: Int = 4096,
         script text: [String]? = nil) throws {
        let words = WordText()
        let prompt = words.tokens(Self.prompt)
        let script = text.map { $0.map(words.tokens) } ?? (0..<steps).map { words.tokens("s\($0) |") } + [words.tokens("done <eos>")]
        let target = ScriptedEngine(words: words, promptLength: prompt.count, contextLength: contextLength) { _ in script }
        let scheduler = Scheduler(engines: EngineSet(target: target, draft: nil, verifiers: [.exact: VerifierChain(semantic: nil, match: .bytes)],
                                                     defaultVerifier: .exact, sequences: 8), limits: config.limits)
        let metrics = DaemonMetrics()
        batcher = Batcher(scheduler: scheduler, metrics: metrics.requests)
        var defaults = config.sessionDefaults()
        defaults.mode = .ar
        defaults.maxTokens = min(config.maxTokensLimit, script.reduce(6) { $0 + $1.count })
        // The scripted vocabulary is frozen here: tokenising reads it from the event loop's threads.
        let known = Dictionary(uniqueKeysWithValues: Self.prompt.split(separator: " ").map { (String($0), words.tokens(String($0))) })
        let counter = tokenised
        let asks = AskPreparer(defaults: defaults, maxTokensLimit: config.maxTokensLimit, maxPromptTokens: config.maxPromptTokens,
                               maxBytesPerToken: 4, defaultVerifier: .exact, capacity: batcher.capacity) { input in
            counter.count.add(1, ordering: .relaxed)
            let text: String
            switch input {
            case .text(let t), .raw(let t): text = t
            case .chat(let messages): text = messages.map(\.content).joined(separator: " ")
            }
            return Prompt(text.split(separator: " ").flatMap { known[String($0)] ?? [Token(99)] })
        }
        state = try TempDir()
        let jobs = JobRunner(directory: state.path, batcher: batcher, asks: asks, model: "scripted", config: config, clock: try JobClock(environment: [:]))
        methods = Methods(config: config, models: .object([:]), batcher: batcher, jobs: jobs, asks: asks, metrics: metrics)
    }

    deinit {
        batcher.shutdown(grace: 0)
        state.remove()
    }

    /// A connection on an embedded loop: time moves only when the test moves it.
    func connection(_ limits: ConnectionLimits? = nil) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([
            ByteToMessageHandler(NIOFrameDecoder(maxPayload: (limits ?? methods.config.connectionLimits).maxFrameBytes)),
            ConnectionHandler(service: methods, limits: limits ?? methods.config.connectionLimits,
                              gate: methods.connections, offload: .inline),
        ])
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/lookaheadd-test")).wait()
        return channel
    }
}

final class Tally: Sendable {
    let count = Atomic<Int>(0)
}

extension EmbeddedChannel {
    func send(_ object: JSONObject) throws {
        try writeInbound(ByteBuffer(bytes: try FrameEncoder(maxPayload: 1 << 30).encode(object)))
    }

    func sendBytes(_ bytes: [UInt8]) throws { try writeInbound(ByteBuffer(bytes: bytes)) }

    /// Every frame written so far, as the client reads them; each must fit `maxPayload`.
    func replies(maxPayload: Int = Frame.defaultMaxPayload) throws -> [ServerMessage] {
        var decoder = FrameDecoder(maxPayload: maxPayload)
        while let buffer = try readOutbound(as: ByteBuffer.self) { decoder.feed(buffer.readableBytesView) }
        var out: [ServerMessage] = []
        while let payload = try decoder.next() { out.append(try ServerMessage(json: try JSONCodec.decodeObject(payload))) }
        return out
    }
}

func request(_ id: JSONValue, _ method: String, _ params: JSONObject = [:]) -> JSONObject {
    ["id": id, "method": .string(method), "params": .object(params)]
}

func errorCode(_ message: ServerMessage?) -> ErrorCode? {
    if case .error(let e)? = message { return e.error.code }
    return nil
}

/// Counts the `read` calls that get past the connection handler to the socket.
final class ReadCounter: ChannelOutboundHandler {
    typealias OutboundIn = Any
    var reads = 0
    func read(context: ChannelHandlerContext) {
        reads += 1
        context.read()
    }
}

@Suite("Connection limits, on an embedded loop")
struct ConnectionTests {
    @Test func aReplyOverTheFrameLimitBecomesASmallTooLargeErrorAndTheConnectionLives() throws {
        let daemon = try ScriptedDaemon()
        var limits = daemon.methods.config.connectionLimits
        limits.maxFrameBytes = 300   // below a status reply
        let channel = try daemon.connection(limits)
        try channel.send(request(1, "status"))
        try channel.send(request(2, "version"))
        let replies = try channel.replies(maxPayload: 300)
        #expect(replies.count == 2)
        #expect(replies.first?.id == 1 && errorCode(replies.first) == .tooLarge)
        if case .result(let r)? = replies.last { #expect(r.id == 2) } else { Issue.record("version got \(String(describing: replies.last))") }
        #expect(channel.isActive)
    }

    @Test func anIDOverItsLimitIsRefusedWithoutBeingEchoed() throws {
        let daemon = try ScriptedDaemon()
        let channel = try daemon.connection()
        try channel.send(request(.string(String(repeating: "i", count: Request.maxIDBytes + 1)), "status"))
        try channel.send(request(.string(String(repeating: "j", count: Request.maxIDBytes)), "version"))
        let replies = try channel.replies()
        guard case .error(let refused)? = replies.first else { Issue.record("got \(replies)"); return }
        #expect(refused.id == nil && refused.error.code == .invalidRequest && refused.error.field == "id")
        #expect(replies.last?.id == .string(String(repeating: "j", count: Request.maxIDBytes)))
    }

    @Test func namesAClientSendsAreEchoedOnlyInPart() throws {
        let daemon = try ScriptedDaemon()
        let channel = try daemon.connection()
        let key = String(repeating: "k", count: 100_000)
        try channel.send(request(1, "status", [key: 1]))
        try channel.send(request(2, key))
        for reply in try channel.replies() {
            guard case .error(let e) = reply else { Issue.record("not an error: \(reply)"); continue }
            #expect(e.error.message.utf8.count <= ProtocolError.maxMessageBytes)
            #expect((e.error.field ?? "").utf8.count <= ProtocolError.maxFieldBytes)
        }
    }

    @Test func methodNamesCannotAddOrInjectMetricLines() throws {
        let daemon = try ScriptedDaemon()
        let channel = try daemon.connection()
        try channel.send(request(1, "x\"} 1\nlookaheadd_injected 1\n#"))
        try channel.send(request(2, "another"))
        try channel.send(request(3, "metrics"))
        guard case .result(let r)? = try channel.replies().last, let text = r.result["text"]?.stringValue else {
            Issue.record("no metrics")
            return
        }
        #expect(!text.split(separator: "\n").contains { $0.hasPrefix("lookaheadd_injected") })
        #expect(text.contains(#"lookaheadd_requests_total{method="other",outcome="unknown_method"} 2"#))
        // Should a label ever carry a hostile value, the exposition escapes it (swift-prometheus).
        daemon.methods.metrics.count(method: "a\"b\\c\nd", outcome: "result")
        #expect(daemon.methods.metricsText().contains(#"method="a\"b\\c\nd""#))
    }

    @Test func asksInFlightAreLimitedPerConnectionButCancelStillWorks() throws {
        var config = DaemonConfiguration()
        config.maxInflightPerConnection = 2
        let daemon = try ScriptedDaemon(config)   // the batcher is not started: asks stay queued
        let channel = try daemon.connection()
        for id in 1...3 { try channel.send(request(.int(Int64(id)), "ask", ["prompt": .string(ScriptedDaemon.prompt)])) }
        try channel.send(request(4, "cancel", ["id": 1]))
        let replies = try channel.replies()
        #expect(replies.count == 2)
        #expect(replies.first?.id == 3 && errorCode(replies.first) == .busy)
        if case .result(let r)? = replies.last { #expect(r.id == 4) } else { Issue.record("cancel got \(replies)") }
    }

    @Test func aFullInteractiveQueueAnswersBusy() throws {
        var config = DaemonConfiguration()
        config.maxQueuedSessions = 2
        let daemon = try ScriptedDaemon(config)
        let first = try daemon.connection(), second = try daemon.connection()
        for id in 1...2 { try first.send(request(.int(Int64(id)), "ask", ["prompt": .string(ScriptedDaemon.prompt)])) }
        try second.send(request(1, "ask", ["prompt": .string(ScriptedDaemon.prompt)]))
        #expect(try first.replies().isEmpty)
        let refused = try second.replies()
        #expect(errorCode(refused.first) == .busy)
        guard case .error(let e)? = refused.first else { return }
        #expect(e.error.message.contains("max_queued_sessions"))
    }

    @Test func aPromptTooLongInBytesIsRefusedBeforeTokenising() throws {
        var config = DaemonConfiguration()
        config.maxPromptTokens = 100   // × 4 bytes a token
        let daemon = try ScriptedDaemon(config)
        let channel = try daemon.connection()
        try channel.send(request(1, "ask", ["prompt": .string(String(repeating: "w ", count: 201))]))
        let reply = try channel.replies().first
        #expect(errorCode(reply) == .tooLarge)
        #expect(daemon.tokenised.count.load(ordering: .relaxed) == 0)
    }

    @Test func aConversationIsCheckedTurnByTurn() throws {
        let daemon = try ScriptedDaemon()
        let channel = try daemon.connection()
        let user: JSONValue = ["role": "user", "content": .string(ScriptedDaemon.prompt)]
        let refused: [(JSONObject, String)] = [
            (["messages": [["role": "robot", "content": "hi"]]], "messages[0].role"),
            (["messages": [user, ["role": "assistant", "content": "ok"]]], "messages[1].role"),
            (["messages": [["role": "user"]]], "messages[0].content"),
            (["messages": [["role": "user", "content": "hi", "name": "x"]]], "messages[0].name"),
            (["messages": []], "messages"),
            (["messages": [user], "prompt": "both"], "messages"),
            ([:], "prompt"),
        ]
        for (i, (params, _)) in refused.enumerated() { try channel.send(request(.int(Int64(i)), "ask", params)) }
        try channel.send(request(99, "ask", ["messages": [["role": "system", "content": "be brief"], user]]))
        let replies = try channel.replies()
        #expect(replies.count == refused.count)   // the valid conversation is queued, not answered
        for (reply, (_, field)) in zip(replies, refused) {
            guard case .error(let e) = reply else { Issue.record("not refused: \(reply)"); continue }
            #expect(e.error.code == .invalidParams && e.error.field == field, "\(e)")
        }
        #expect(daemon.tokenised.count.load(ordering: .relaxed) == 1)
    }

    @Test func aLargeFrameIsHandledInOrderWithTheFramesAfterIt() throws {
        let daemon = try ScriptedDaemon()
        let channel = try daemon.connection()
        try channel.send(request(1, "status", ["padding": .string(String(repeating: "p", count: Offload.threshold))]))
        try channel.send(request(2, "version"))
        #expect(try channel.replies().map(\.id) == [1, 2])
    }

    @Test func aFrameLeftUnfinishedTimesOut() throws {
        var config = DaemonConfiguration()
        config.frameTimeoutSeconds = 5
        let daemon = try ScriptedDaemon(config)
        let channel = try daemon.connection()
        try channel.sendBytes([0, 0, 0, 100] + Array(repeating: UInt8(ascii: " "), count: 10))
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(errorCode(try channel.replies().first) == .timeout)
        #expect(!channel.isActive)
    }

    @Test func anIdleConnectionIsClosedButOneWaitingForAnAnswerIsNot() throws {
        var config = DaemonConfiguration()
        config.idleTimeoutSeconds = 60
        let daemon = try ScriptedDaemon(config)
        let idle = try daemon.connection(), waiting = try daemon.connection()
        try waiting.send(request(1, "ask", ["prompt": .string(ScriptedDaemon.prompt)]))
        idle.embeddedEventLoop.advanceTime(by: .seconds(30))
        try idle.send(request(1, "version"))   // activity restarts the clock
        idle.embeddedEventLoop.advanceTime(by: .seconds(50))
        #expect(idle.isActive)
        idle.embeddedEventLoop.advanceTime(by: .seconds(11))
        #expect(!idle.isActive)
        #expect(errorCode(try idle.replies().last) == .timeout)
        waiting.embeddedEventLoop.advanceTime(by: .seconds(600))
        #expect(waiting.isActive)
    }

    @Test func readsStopWhileRepliesGoUnreadAndAStuckReaderIsClosed() throws {
        var config = DaemonConfiguration()
        config.stalledReaderSeconds = 30
        let daemon = try ScriptedDaemon(config)
        let channel = try daemon.connection()
        let counter = ReadCounter()
        try channel.pipeline.syncOperations.addHandler(counter, position: .first)
        channel.read()
        #expect(counter.reads == 1)
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        channel.read()
        #expect(counter.reads == 1)
        channel.isWritable = true
        channel.pipeline.fireChannelWritabilityChanged()
        #expect(counter.reads == 2)   // the held read goes out
        channel.isWritable = false
        channel.pipeline.fireChannelWritabilityChanged()
        channel.embeddedEventLoop.advanceTime(by: .seconds(29))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        #expect(!channel.isActive)
    }

    @Test func connectionsOverTheLimitAreRefusedWithBusy() throws {
        var config = DaemonConfiguration()
        config.maxConnections = 2
        let daemon = try ScriptedDaemon(config)
        let first = try daemon.connection(), second = try daemon.connection()
        let third = try daemon.connection()
        #expect(errorCode(try third.replies().first) == .busy)
        #expect(!third.isActive && first.isActive && second.isActive)
        #expect(daemon.methods.connections.open == 2)
        try first.close().wait()
        let fourth = try daemon.connection()
        #expect(fourth.isActive && daemon.methods.connections.open == 2)
    }

    @Test func perUserLimitCountsOneUID() {
        var limits = ConnectionLimits()
        limits.maxConnectionsPerUser = 2
        let gate = ConnectionGate(limits: limits)
        #expect(gate.enter(uid: 1000) == nil && gate.enter(uid: 1000) == nil)
        #expect(gate.enter(uid: 1000)?.code == .busy)
        #expect(gate.enter(uid: 1001) == nil)
        gate.leave(uid: 1000)
        #expect(gate.enter(uid: 1000) == nil)
        #expect(gate.open == 3)
    }
}

extension ConnectionTests {
    @Test func aFrameThatIsNotAJSONObjectEndsTheConnectionWithOneError() throws {
        let daemon = try ScriptedDaemon()
        for payload in ["{\"id\": 1,", "[1]"] {
            let channel = try daemon.connection()
            let bytes = Array(payload.utf8)
            try channel.sendBytes([0, 0, 0, UInt8(bytes.count)] + bytes)
            let replies = try channel.replies()
            #expect(replies.count == 1 && replies.first?.id == nil && errorCode(replies.first) == .invalidRequest)
            #expect(!channel.isActive)
        }
    }
}

/// The daemon's server on a real socket, over scripted engines.
struct Served {
    let daemon: ScriptedDaemon
    let server: Server
    let network = Network()
    let path: String

    init(_ config: DaemonConfiguration, steps: Int = 4, contextLength: Int = 4096) throws {
        daemon = try ScriptedDaemon(config, steps: steps, contextLength: contextLength)
        path = daemon.state.sub("lookaheadd.sock")
        server = try Server(service: daemon.methods, listener: .path(path, mode: 0o600), network: network)
        daemon.batcher.start()
    }

    func stop() {
        server.stopAccepting()
        network.shutdown()
    }

    func status() throws -> JSONObject {
        try #require(try Client(path: path).call(method: "status").objectValue)
    }
}

@Suite("Connection limits, over a real socket", .serialized)
struct SocketTests {
    @Test func aClientThatSendsAndNeverReadsIsDisconnected() throws {
        var config = DaemonConfiguration()
        config.maxUnsentBytes = 4096
        config.stalledReaderSeconds = 0.5
        let served = try Served(config)
        defer { served.stop() }
        let fd = try connectUnixSocket(served.path)
        defer { close(fd) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let frame = try FrameEncoder().encode(request(1, "status"))
        let start = monotonicSeconds()
        var dropped = false
        while !dropped, monotonicSeconds() - start < 20 {
            let sent = frame.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent < 0 {
                if errno == EAGAIN { usleep(5000) } else { dropped = true }
            }
        }
        #expect(dropped, "the daemon kept a connection that never reads for 20 s")
        // Everyone else is still served, and the connection is counted out.
        let status = try served.status()
        #expect(status["connections"]?.objectValue?["open"] == 1)
    }

    @Test func aSlowReaderGetsItsStepsMergedNotQueuedOneByOne() throws {
        var config = DaemonConfiguration()
        config.maxUnsentBytes = 4096
        config.maxTokensLimit = 9000
        let steps = 4000
        let served = try Served(config, steps: steps, contextLength: 12000)
        defer { served.stop() }
        let fd = try connectUnixSocket(served.path)
        defer { close(fd) }
        let frame = try FrameEncoder().encode(request(1, "ask", ["prompt": .string(ScriptedDaemon.prompt), "max_tokens": 8500]))
        _ = frame.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        // Read nothing until the answer is written.
        let start = monotonicSeconds()
        while try served.status()["requests"]?.objectValue?["finished"] != 1, monotonicSeconds() - start < 60 { usleep(20_000) }
        var decoder = FrameDecoder()
        var events: [Event] = [], result: ResultReply?
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while result == nil {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            decoder.feed(chunk[..<n])
            while let payload = try decoder.next() {
                switch try ServerMessage(json: try JSONCodec.decodeObject(payload)) {
                case .event(let e): events.append(e)
                case .result(let r): result = r
                case .error(let e): Issue.record("ask failed: \(e)")
                }
            }
        }
        let text = try #require(result?.result["text"]?.stringValue)
        #expect(events.count > 1 && events.count < steps)
        #expect(events.compactMap { $0.data["text"]?.stringValue }.joined() == text)
    }
}
