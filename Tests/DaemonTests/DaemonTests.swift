import Foundation
import Llama
import Lookahead
import LookaheadProtocol
import StepBatcher
import Testing
import TestSupport

/// A bare connection for sending broken frames the real client never would.
final class RawConnection {
    let fd: Int32
    private var decoder = FrameDecoder()

    init(path: String) throws { fd = try connectUnixSocket(path) }
    deinit { close(fd) }

    func write(_ bytes: [UInt8]) { _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }

    func frame(_ json: String) {
        let payload = Array(json.utf8)
        let n = UInt32(payload.count)
        write([UInt8(n >> 24), UInt8(n >> 16 & 0xFF), UInt8(n >> 8 & 0xFF), UInt8(n & 0xFF)] + payload)
    }

    /// The next whole frame as an object, nil at EOF.
    func next() throws -> JSONObject? {
        while true {
            if let payload = try decoder.next() { return try JSONCodec.decodeObject(payload) }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return nil }
            decoder.feed(buffer[0..<n])
        }
    }

    func errorCode() throws -> String? { try next()?["error"]?["code"]?.stringValue }
}

/// Runs `body` for 0..<n on as many threads, as concurrent clients do.
final class Slots<T>: @unchecked Sendable {
    let lock = NSLock()
    var items: [T?]
    init(_ n: Int) { items = Array(repeating: nil, count: n) }
}

/// Runs `body` for 0..<n, each on its own thread, as n clients at once would (concurrentPerform
/// would run only as many at a time as there are cores).
func concurrently<T: Sendable>(_ n: Int, _ body: @escaping @Sendable (Int) -> T?) -> [T?] {
    let slots = Slots<T>(n)
    let done = DispatchGroup()
    for i in 0..<n {
        done.enter()
        Thread.detachNewThread {
            let r = body(i)
            slots.lock.withLock { slots.items[i] = r }
            done.leave()
        }
    }
    done.wait()
    return slots.items
}

func ask(_ client: Client, _ prompt: String, _ extra: JSONObject = [:], onEvent: (Event) -> Void = { _ in }) throws -> JSONValue {
    var params: JSONObject = ["prompt": .string(prompt), "verifier": "exact"]
    for (k, v) in extra { params[k] = v }
    return try client.call(method: "ask", params: Params(params), onEvent: onEvent)
}

@Suite("lookaheadd end to end", .serialized, .timeLimit(.minutes(10)))
struct DaemonTests {
    /// Several sessions really share target passes, and each answer is what it is alone.
    @Test(arguments: [2, 4])
    func concurrentAsksArePackedIntoSharedPasses(sessions: Int) throws {
        // Equal answers alone and packed is what batch invariance promises; the default (repacked,
        // fused kernels) may split them at near-ties.
        let daemon = try startDaemon(config: "max_sessions = 4\nbatch_invariant = true\n")
        let prompts = try GSM8K.prompts(sessions)
        let alone = try prompts.map { try ask(daemon.client(), $0, ["mode": "ar", "max_tokens": 24])["text"]?.stringValue }
        let before = try daemon.status()["passes"]?["target_shared"]?.intValue ?? 0

        let socket = daemon.socket
        let together = concurrently(sessions) { i in
            try? ask(Client(path: socket), prompts[i], ["mode": "ar", "max_tokens": 24])
        }
        for i in 0..<sessions {
            #expect(together[i]?["finish_reason"]?.stringValue == "length")
            #expect(together[i]?["text"]?.stringValue == alone[i], "session \(i) changed when batched")
        }
        let passes = try #require(try daemon.status()["passes"]?.objectValue)
        print("\(sessions) sessions: \(passes)")
        #expect((passes["target_shared"]?.intValue ?? 0) > before, "no target pass carried more than one session")
        #expect((passes["max_sessions_per_target_pass"]?.intValue ?? 0) >= 2)
        #expect(daemon.stop() == 0)
    }

    @Test func lookaheadSessionsArePackedToo() throws {
        let prompts = try GSM8K.prompts(2)
        let daemon = try startDaemon(config: "max_sessions = 2\n")
        let socket = daemon.socket
        // One adaptive (the default), one with speculation kept on: the draft runs for every token.
        // The second is judged by the normalized verifier, which every daemon offers.
        let results = concurrently(2) { i in
            try? ask(Client(path: socket), prompts[i],
                     ["mode": "lookahead+sd", "max_tokens": 48, "adaptive": .bool(i == 0), "verifier": i == 0 ? "exact" : "normalized"])
        }
        #expect(results.allSatisfy { $0?["tokens"]?.intValue == 48 })
        #expect(results.map { $0?["stats"]?["verifier"]?["name"]?.stringValue } == ["exact", "normalized"])
        #expect(results[1]?["stats"]?["draft_pauses"]?.intValue == 0)
        #expect(results[1]?["stats"]?["drafted_tokens"]?.intValue == 48)
        let status = try daemon.status()
        #expect((status["passes"]?["target_shared"]?.intValue ?? 0) > 0)
        #expect(status["sequences"]?["used"]?.intValue == 0)
        // The thread governor's count is reported, within the configured maximum (2 by default).
        let threads = try #require(status["engine_threads"]?.objectValue)
        #expect(threads["max"]?.intValue == 2)
        #expect((1...2).contains(threads["now"]?.intValue ?? 0), "\(threads)")
    }

    /// The prefix cache on the real model, batch-invariant kernels: the same question again starts
    /// from the first one's cells and writes the same tokens as without the cache (target and
    /// draft each start from their own); a conversation's next turn starts from the previous
    /// prompt and answer.
    @Test func aRepeatedPromptAndTheNextTurnStartFromTheCache() throws {
        let daemon = try startDaemon(config: "batch_invariant = true\n")
        let prompt = try GSM8K.prompt(GSM8K.problem(2))
        let knobs: JSONObject = ["mode": "lookahead", "adaptive": false, "max_tokens": 24]
        let cold = try ask(daemon.client(), prompt, knobs)
        let warm = try ask(daemon.client(), prompt, knobs)
        var off = knobs
        off["cache_prompt"] = false
        let uncached = try ask(daemon.client(), prompt, off)
        let promptTokens = try #require(cold["prompt_tokens"]?.intValue)
        #expect(promptTokens > 50 && warm["prompt_tokens"]?.intValue == promptTokens)
        #expect(cold["cached_tokens"]?.intValue == 0 && uncached["cached_tokens"]?.intValue == 0)
        // All but the last prompt token, whose pass gives the first distribution.
        #expect(warm["cached_tokens"]?.intValue == promptTokens - 1)
        #expect(warm["text"] == cold["text"] && uncached["text"] == cold["text"])
        #expect((cold["stats"]?["draft_tokens"]?.intValue ?? 0) > 0)

        func turns(_ list: [(String, String)]) -> JSONValue { .array(list.map { .object(["role": .string($0.0), "content": .string($0.1)]) }) }
        var chat = knobs
        chat["verifier"] = "exact"
        chat["messages"] = turns([("user", "Name a prime number between 10 and 20.")])
        let first = try daemon.client().call(method: "ask", params: Params(chat))
        let firstPrompt = try #require(first["prompt_tokens"]?.intValue)
        chat["messages"] = turns([("user", "Name a prime number between 10 and 20."),
                                  ("assistant", first["text"]?.stringValue ?? ""), ("user", "And one between 20 and 30?")])
        let second = try daemon.client().call(method: "ask", params: Params(chat))
        #expect((second["cached_tokens"]?.intValue ?? 0) >= firstPrompt, "\(second)")
        #expect((second["prompt_tokens"]?.intValue ?? 0) > (second["cached_tokens"]?.intValue ?? 0))

        let cache = try #require(try daemon.status()["prefix_cache"]?.objectValue)
        // Four asks looked up (not the one with cache_prompt false); three hit: the warm repeat, the
        // next turn, and the first turn too, for the chat template's opening tokens it shares with
        // the question (also a user turn).
        #expect(cache["enabled"] == .bool(true) && cache["lookups"]?.intValue == 4 && cache["hits"]?.intValue == 3, "\(cache)")
        #expect((first["cached_tokens"]?.intValue ?? 0) < 10)
        #expect((cache["sequences"]?.intValue ?? 0) >= 1 && (cache["cells"]?.intValue ?? 0) > firstPrompt)
        #expect((cache["draft_sequences"]?.intValue ?? 0) >= 1)
        #expect(daemon.stop() == 0)
    }

    /// The daemon's greedy `ar` answer is the in-process one: serving changes nothing.
    /// Also as a conversation: one user turn is the prompt, and a system turn goes through the
    /// target's chat template as `ask --local` formats it.
    /// A draft of another family through the daemon: Gemma 3 270M drafting for the Qwen target.
    /// `models` and `status` say the steps cross as text; the answer is the target's own (exact
    /// verifier, batch-invariant kernels) and draft steps are accepted.
    @Test func aDraftOfAnotherFamilyServesAsks() throws {
        let tiny = EngineConfig.defaultModelDirectory + "/tiny.gguf"
        try requireModel(tiny)
        let daemon = try startDaemon(config: "draft_model = \(tiny)\nbatch_invariant = true\n")
        #expect(try daemon.client().call(method: "models")["draft_vocabulary"]?.stringValue == "own")
        #expect(try daemon.status()["draft_vocabulary"]?.stringValue == "own")
        let days = "The days of the week, one per paragraph:\n\nMonday\n\nTuesday\n\n"
        let knobs: JSONObject = ["template": false, "max_tokens": 24, "adaptive": false]
        var ar = knobs
        ar["mode"] = "ar"
        let plain = try ask(daemon.client(), days, ar)
        var la = knobs
        la["mode"] = "lookahead"
        let speculated = try ask(daemon.client(), days, la)
        #expect(speculated["text"] == plain["text"] && plain["text"]?.stringValue?.hasPrefix("Wednesday\n\n") == true)
        #expect((speculated["stats"]?["accepted_steps"]?.intValue ?? 0) > 0, "\(speculated)")
        #expect(daemon.stop() == 0)
    }

    @Test func daemonAnswerEqualsInProcessAR() throws {
        let prompt = try GSM8K.prompt(GSM8K.problem(1))
        let system = "You are a careful tutor. Answer briefly."
        let daemon = try startDaemon()
        let served = try ask(daemon.client(), prompt, ["mode": "ar", "max_tokens": 48])
        func turns(_ list: [(String, String)]) -> JSONValue { .array(list.map { .object(["role": .string($0.0), "content": .string($0.1)]) }) }
        var asChat: JSONObject = ["mode": "ar", "max_tokens": 24, "verifier": "exact", "messages": turns([("user", prompt)])]
        let servedAsChat = try daemon.client().call(method: "ask", params: Params(asChat))
        asChat["messages"] = turns([("system", system), ("user", prompt)])
        let servedWithSystem = try daemon.client().call(method: "ask", params: Params(asChat))
        daemon.stop()
        var config = EngineConfig()
        config.verifier = .exact
        config.contextLength = 2048
        let engines = try Engines(config: config, loadDraft: false)
        var session = SessionConfig(mode: .ar)
        session.maxTokens = 48
        let local = try engines.generate(.text(prompt), config: session)
        #expect(served["text"]?.stringValue == local.text)
        #expect(served["tokens"]?.intValue == Int64(local.tokens.count))
        session.maxTokens = 24
        #expect(servedAsChat["text"]?.stringValue == (try engines.generate(.text(prompt), config: session)).text)
        let withSystem = try engines.generate(.chat([ChatMessage(role: "system", content: system), ChatMessage(role: "user", content: prompt)]),
                                              config: session)
        #expect(servedWithSystem["text"]?.stringValue == withSystem.text)
        #expect(try engines.prompt(.chat([ChatMessage(role: "system", content: system), ChatMessage(role: "user", content: prompt)]))
                != (try engines.prompt(.text(prompt))))
    }

    @Test func cancelAndDisconnectFreeTheSession() throws {
        let prompt = try GSM8K.prompt(GSM8K.problem(0))
        let daemon = try startDaemon()
        // Cancel by request: the cancel is answered with the id it cancelled, and the ask ends with `cancelled`.
        let client = try daemon.client()
        let id = client.makeID()
        try client.send(Request(id: id, method: "ask", params: ["prompt": .string(prompt), "max_tokens": 400]))
        var sawStep = false
        var cancelReply: JSONValue?
        var askEnd: ServerMessage?
        while cancelReply == nil || askEnd == nil {
            let message = try client.next()
            switch message {
            case .event(let e) where e.event == "step" && e.id == id:
                if !sawStep {
                    sawStep = true
                    try client.send(Request(id: "c", method: "cancel", params: ["id": id]))
                }
            case .result(let r) where r.id == "c":
                cancelReply = r.result
            case _ where message.isFinal && message.id == id:
                askEnd = message
            case _ where message.isFinal:
                // The cancel itself failed: nothing more is coming for it.
                Issue.record("unexpected reply \(message)")
                cancelReply = .null
            default:
                break
            }
            if askEnd != nil, !sawStep { break }
        }
        #expect(cancelReply?["cancelled"] == id, "cancel answered \(String(describing: cancelReply))")
        guard case .error(let e) = askEnd else { Issue.record("the ask was not cancelled: \(String(describing: askEnd))"); return }
        #expect(e.error.code == .cancelled)
        #expect(sawStep)
        try waitForIdle(daemon)

        // A client that disconnects mid-stream cancels its request too.
        let raw = try RawConnection(path: daemon.socket)
        raw.frame(#"{"id":1,"method":"ask","params":{"prompt":"Count from 1 to 500, one number per line.","max_tokens":400}}"#)
        #expect(try raw.next()?["event"]?.stringValue == "step")
        close(raw.fd)
        try waitForIdle(daemon)
        let status = try daemon.status()
        #expect(status["requests"]?["cancelled"]?.intValue == 2)
        #expect(daemon.stop() == 0)
    }

    private func waitForIdle(_ daemon: DaemonProcess) throws {
        for _ in 0..<100 {
            let s = try daemon.status()
            if s["sessions"]?["active"]?.intValue == 0, s["sequences"]?["used"]?.intValue == 0,
               s["sequences"]?["draft_used"]?.intValue == 0, s["kv_cells"]?["reserved"]?.intValue == 0 { return }
            Thread.sleep(forTimeInterval: 0.1)
        }
        Issue.record("sequences still held: \(try daemon.status())")
    }

    /// Each bad input gets its documented code; a client asking meanwhile is served throughout.
    @Test func badInputGetsClearErrorsAndOthersAreServed() throws {
        let daemon = try startDaemon(config: "max_prompt_tokens = 64\nmax_frame_bytes = 65536\n")
        let bystander = try daemon.client()
        let id = bystander.makeID()
        try bystander.send(Request(id: id, method: "ask", params: ["prompt": "Count from 1 to 30.", "max_tokens": 40, "mode": "ar"]))

        func expectCode(_ frame: String, _ code: String, field: String? = nil, closes: Bool = false) throws {
            let c = try RawConnection(path: daemon.socket)
            c.frame(frame)
            let reply = try #require(try c.next(), "no reply to \(frame)")
            #expect(reply["error"]?["code"]?.stringValue == code, "\(frame) → \(reply)")
            if let field { #expect(reply["error"]?["field"]?.stringValue == field, "\(frame) → \(reply)") }
            if closes { #expect(try c.next() == nil, "connection left open after \(frame)") }
        }
        try expectCode("{not json", "invalid_request", closes: true)
        try expectCode(#"{"id":1,"method":"frobnicate"}"#, "unknown_method", field: "method")
        try expectCode(#"{"id":1,"method":"ask","params":{"prompt":"hi","gamma":"four"}}"#, "invalid_params", field: "gamma")
        try expectCode(#"{"id":1,"method":"ask","params":{"prompt":"   "}}"#, "invalid_params", field: "prompt")
        try expectCode(#"{"id":1,"method":"ask","params":{"prompt":"hi","max_tokens":-3}}"#, "invalid_params", field: "max_tokens")
        try expectCode(#"{"id":1,"method":"ask","params":{"prompt":"hi","mode":"fast"}}"#, "invalid_params", field: "mode")
        try expectCode(#"{"id":1,"method":"ask","params":{"prompt":"hi","adaptive":"no"}}"#, "invalid_params", field: "adaptive")
        try expectCode(#"{"id":1,"method":"ask","params":{"prompt":"hi","cache_prompt":1}}"#, "invalid_params", field: "cache_prompt")
        try expectCode(#"{"id":1,"method":"ask","params":{"prompt":"hi","colour":"red"}}"#, "invalid_params", field: "colour")
        let long = String(repeating: "apples and pears ", count: 60)
        try expectCode(#"{"id":1,"method":"ask","params":{"prompt":"\#(long)"}}"#, "too_large", field: "prompt")

        // A frame over the limit is refused from its header alone, before any payload is sent.
        let big = try RawConnection(path: daemon.socket)
        big.write([0x00, 0x10, 0x00, 0x00])
        #expect(try big.errorCode() == "too_large")
        #expect(try big.next() == nil)

        // A truncated frame from a client that gives up costs nothing.
        let truncated = try RawConnection(path: daemon.socket)
        truncated.write([0, 0, 0, 100] + Array("{\"id\":1".utf8))
        close(truncated.fd)

        let answer = try daemon.client().call(method: "status")
        #expect(answer["state"]?.stringValue == "ready")
        var final: ServerMessage?
        while final == nil { let m = try bystander.next(); if m.isFinal, m.id == id { final = m } }
        guard case .result(let r) = final else { Issue.record("bystander's ask failed: \(String(describing: final))"); return }
        #expect(r.result["tokens"]?.intValue == 40)
        #expect(daemon.stop() == 0)
    }

    @Test func socketActivationAndReadiness() throws {
        let sandbox = try Sandbox()
        let notify = try NotifySocket(path: sandbox.path + "/notify")
        let socketPath = sandbox.path + "/activated.sock"
        let activate = "/usr/bin/systemd-socket-activate"
        // systemd-socket-activate hands the daemon only the variables it is told to.
        let inherited = ProcessInfo.processInfo.environment
        let passed = ["NOTIFY_SOCKET", "WATCHDOG_USEC"]
            + ["LOOKAHEAD_MODELS", "HOME", "XDG_CACHE_HOME", "LD_LIBRARY_PATH"].filter { inherited[$0] != nil }
        try #require(FileManager.default.isExecutableFile(atPath: activate), "systemd-socket-activate missing (Debian: systemd)")
        let daemon = try sandbox.start(arguments: ["--state-dir", sandbox.state], environment: [
            "NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000",
        ], launcher: [activate, "-l", socketPath] + passed.flatMap { ["-E", $0] }, waitForSocket: false)
        // systemd-socket-activate starts the daemon on the first connection, as systemd would.
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socketPath) { Thread.sleep(forTimeInterval: 0.1) }
        let version = try Client(path: socketPath).call(method: "version")
        #expect(version["protocol"]?.intValue == 1)
        var got: [String] = []
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !(got.contains("READY=1") && got.contains("WATCHDOG=1")) {
            if let m = notify.receive(timeout: 1) { got.append(m) }
        }
        #expect(got.contains("READY=1"), "got \(got); daemon said:\n\(daemon.log)")
        #expect(got.contains("WATCHDOG=1"))
        // Handed neither wait-policy variable, the daemon set libgomp's short spin and executed itself
        // again before loading anything; the socket systemd passed it survived that (it answered above).
        let environment = (try? String(contentsOfFile: "/proc/\(daemon.process.processIdentifier)/environ", encoding: .utf8)) ?? ""
        #expect(environment.split(separator: "\0").contains("GOMP_SPINCOUNT=\(ThreadWaitPolicy.spinCount)"),
                "environment: \(environment.split(separator: "\0"))")
        #expect(daemon.stop() == 0)
        let stopping = (0..<20).compactMap { _ in notify.receive(timeout: 0.1) }
        #expect((got + stopping).contains("STOPPING=1"))
    }

    /// The target's last 8 layers on an rpc-server: `models` and `status` show it; killing the
    /// server mid-answer fails that ask with `internal` naming the server, and the daemon answers
    /// `status` (the server `lost`) afterwards. A server that is down stops the start, named.
    @Test func anRPCServerLostMidAskFailsItAndTheDaemonServesOn() throws {
        let server = try RPCServer()
        let daemon = try startDaemon(config: "rpc_servers = \(server.endpoint)\ngpu_layers = 8\n")
        let target = try #require(try daemon.call("models")["models"]?.arrayValue?.first)
        #expect(target["offloaded_layers"]?.intValue == 8, "\(target)")
        #expect(target["devices"]?.arrayValue?.first?.stringValue?.contains(server.endpoint) == true, "\(target)")
        let before = try daemon.status()
        #expect(before["rpc_servers"] == .array([.object(["endpoint": .string(server.endpoint), "lost": false])]))
        #expect(before["models"]?.arrayValue?.first?["device"] == target["device"])
        var steps = 0
        let client = try daemon.client(), prompt = try GSM8K.prompt(GSM8K.problem(1))
        let outcome = Result {
            try ask(client, prompt, ["mode": "ar", "max_tokens": 256]) { _ in
                steps += 1
                if steps == 1 { server.kill() }
            }
        }
        guard case .failure(ClientError.rejected(let error)) = outcome else { Issue.record("\(outcome)"); return }
        #expect(error.code == .internal && error.message.contains(server.endpoint), "\(error)")
        let status = try daemon.status()
        #expect(status["state"]?.stringValue == "ready")
        #expect(status["rpc_servers"]?.arrayValue?.first?["lost"] == true)
        #expect(daemon.stop() == 0)

        let down = "127.0.0.1:\(try RPCServer.freePort())"
        let refused = try startDaemon(config: "rpc_servers = \(down)\n", waitForSocket: false)
        #expect(refused.waitForExit() == 1)
        #expect(refused.log.contains("rpc server \(down)"), "\(refused.log)")
    }

    @Test func configErrorsNameTheLineAndMissingModelsFailClearly() throws {
        let bad = try startDaemon(config: "verifier = exact\ncolour = blue\n", waitForSocket: false)
        #expect(bad.waitForExit() == 78)
        let line = Sandbox.merged(Sandbox.smallConfig, "verifier = exact\ncolour = blue\n").split(separator: "\n").count
        #expect(bad.log.contains("lookaheadd.conf:\(line)"), "\(bad.log)")
        #expect(bad.log.contains("colour"))

        let missing = try startDaemon(config: "target_model = /nonexistent/target.gguf\n", waitForSocket: false)
        #expect(missing.waitForExit() == 1)
        #expect(missing.log.contains("/nonexistent/target.gguf"), "\(missing.log)")
    }

    /// SIGTERM with an ask in flight: the daemon stops taking work (a new connection is refused, a
    /// new ask on an open one is `busy`) and finishes the ask within the grace, then exits 0.
    @Test func sigtermFinishesInFlightWorkWithinTheGrace() throws {
        let prompt = try GSM8K.prompt(GSM8K.problem(3))
        // A wait policy given in the environment is the operator's: the daemon keeps it as it is.
        let daemon = try startDaemon(config: "shutdown_grace_seconds = 120\n", environment: ["OMP_WAIT_POLICY": "passive"])
        let environment = ((try? String(contentsOfFile: "/proc/\(daemon.process.processIdentifier)/environ", encoding: .utf8)) ?? "")
            .split(separator: "\0").map(String.init)
        #expect(environment.contains("OMP_WAIT_POLICY=passive"))
        #expect(environment.first { $0.hasPrefix("GOMP_SPINCOUNT=") }
                == ProcessInfo.processInfo.environment["GOMP_SPINCOUNT"].map { "GOMP_SPINCOUNT=\($0)" })
        let client = try daemon.client()
        let bystander = try daemon.client()
        let id = client.makeID()
        // Long enough to be still running when the signal lands, short enough for the grace on 2 cores.
        let maxTokens = 96
        try client.send(Request(id: id, method: "ask", params: ["prompt": .string(prompt), "max_tokens": JSONValue(maxTokens), "mode": "ar"]))
        var started = false
        for _ in 0..<600 where !started {
            started = try bystander.call(method: "status")["sessions"]?["active"] == 1
            if !started { Thread.sleep(forTimeInterval: 0.05) }
        }
        try #require(started, "the ask never started")
        kill(daemon.process.processIdentifier, SIGTERM)

        // The daemon says it is stopping, with the ask still running.
        var stopping: JSONValue?
        for _ in 0..<200 where stopping == nil {
            let status = try bystander.call(method: "status")
            if status["state"] == "stopping" { stopping = status } else { Thread.sleep(forTimeInterval: 0.05) }
        }
        let status = try #require(stopping, "the daemon never reported stopping")
        #expect(status["sessions"]?["active"] == 1, "the ask was not running when the daemon began stopping: \(status)")
        // New work is refused: no new connection, and `busy` on one already open.
        let connection = Result { try Client(path: daemon.socket) }
        #expect((try? connection.get()) == nil, "a new connection was accepted after SIGTERM")
        let late = Result { try bystander.call(method: "ask", params: ["prompt": "What is 2 plus 2?", "mode": "ar", "max_tokens": 2]) }
        switch late {
        case .failure(ClientError.rejected(let error)): #expect(error.code == .busy, "\(error)")
        default: Issue.record("an ask after SIGTERM was not refused: \(late)")
        }

        var final: ServerMessage?
        while final == nil { let m = try client.next(); if m.isFinal { final = m } }
        guard case .result(let r) = final else { Issue.record("in-flight ask lost: \(String(describing: final))"); return }
        #expect(r.result["tokens"]?.intValue == Int64(maxTokens))
        #expect(r.result["finish_reason"] == "length")
        #expect(daemon.stop(timeout: 180) == 0)
    }
}

@Suite("lookaheadd under a supervisor", .serialized, .timeLimit(.minutes(5)))
struct SupervisedDaemonTests {
    /// A supervisor that set a parent-death signal (`setpriv --pdeathsig`, as the tests' own
    /// launcher does) takes the daemon with it — also when the daemon re-executes itself for the
    /// thread wait policy, which it does when neither GOMP_SPINCOUNT nor OMP_WAIT_POLICY is set.
    @Test func theDaemonDiesWithTheProcessThatStartedIt() throws {
        let sandbox = try Sandbox()
        let pidFile = sandbox.path + "/daemon.pid"
        let daemon = try sandbox.start(config: "", launcher: [
            "/usr/bin/env", "-u", "GOMP_SPINCOUNT", "-u", "OMP_WAIT_POLICY", "/bin/sh", "-c",
            "setpriv --pdeathsig KILL \"$@\" & echo $! > \(pidFile); wait", "supervisor",
        ])
        let pid = try #require(Int32((try String(contentsOfFile: pidFile, encoding: .utf8)).trimmingCharacters(in: .whitespacesAndNewlines)))
        func alive() -> Bool {
            // A zombie waiting for a reaper that never comes has died all the same.
            guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return false }
            return !stat[stat.index(after: close)...].hasPrefix(" Z")
        }
        #expect(alive())
        kill(daemon.process.processIdentifier, SIGKILL)
        let deadline = Date().addingTimeInterval(10)
        while alive(), Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        let survived = alive()
        if survived { kill(pid, SIGKILL) }
        #expect(!survived, "lookaheadd outlived the process that started it")
    }
}
