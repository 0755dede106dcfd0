import LookaheadProtocol
import Testing

@Suite struct ClientTests {
    @Test func eventsThenResult() throws {
        let daemon = try FakeDaemon { request in
            [.step(request, "<think>\nfirst\n\n", phase: "thinking"),
             // Another request's frame on the same connection is not this call's.
             .frame(Event(id: "other", event: "step", data: ["text": "stray"]).json),
             .step(request, "answer", phase: "answer"),
             .result(request, ["text": "<think>\nfirst\n\nanswer", "tokens": 7])]
        }
        defer { daemon.stop() }
        let client = try Client(path: daemon.path)
        var texts: [String] = []
        let result = try client.call(method: "ask", params: ["prompt": "hi"]) { texts.append($0.data["text"]?.stringValue ?? "") }

        #expect(texts == ["<think>\nfirst\n\n", "answer"])
        #expect(result == ["text": "<think>\nfirst\n\nanswer", "tokens": 7])
        #expect(daemon.requests.map(\.method) == ["ask"])
        #expect(daemon.requests.first?.params["prompt"] == "hi")
    }

    @Test func everyCallHasItsOwnID() throws {
        let daemon = try FakeDaemon { [.result($0, ["ok": true])] }
        defer { daemon.stop() }
        let client = try Client(path: daemon.path)
        _ = try client.call(method: "status")
        _ = try client.call(method: "version")
        let ids = daemon.requests.map(\.id)
        #expect(ids.count == 2 && Set(ids).count == 2)
    }

    @Test func errorReplyCarriesItsCode() throws {
        let daemon = try FakeDaemon { [.error($0, .invalidParams, "gamma must be an integer, got a string", field: "gamma")] }
        defer { daemon.stop() }
        let client = try Client(path: daemon.path)
        let error = #expect(throws: ClientError.self) { try client.call(method: "ask", params: ["gamma": "four"]) }
        #expect(error?.code == .invalidParams)
        #expect(error == .rejected(ProtocolError(.invalidParams, "gamma must be an integer, got a string", field: "gamma")))
    }

    @Test func connectionLevelErrorEndsTheCall() throws {
        let daemon = try FakeDaemon { _ in
            [.frame(ErrorReply(id: nil, error: ProtocolError(.tooLarge, "frame too large")).json), .close]
        }
        defer { daemon.stop() }
        let error = #expect(throws: ClientError.self) { try Client(path: daemon.path).call(method: "status") }
        #expect(error?.code == .tooLarge)
    }

    @Test func daemonClosingMidStream() throws {
        let daemon = try FakeDaemon { request in
            // A step, then the header of a frame whose payload never comes.
            [.step(request, "one", phase: "thinking"), .bytes([0, 0, 0, 40, 0x7B]), .close]
        }
        defer { daemon.stop() }
        let client = try Client(path: daemon.path)
        var steps = 0
        let error = #expect(throws: ClientError.self) { try client.call(method: "ask") { _ in steps += 1 } }
        #expect(steps == 1)
        #expect(error == .disconnected("connection closed by lookaheadd"))
    }

    @Test func framesOverTheLimitAreRefused() throws {
        let daemon = try FakeDaemon { [.result($0, .string(String(repeating: "x", count: 2000)))] }
        defer { daemon.stop() }
        let error = #expect(throws: ClientError.self) { try Client(path: daemon.path, maxPayload: 1024).call(method: "status") }
        guard case .malformedReply(let problem)? = error else { Issue.record("got \(String(describing: error))"); return }
        #expect(problem.code == .tooLarge)
    }

    @Test func noSocketMeansNotRunning() throws {
        let path = "/nonexistent/lookaheadd.sock"
        let error = #expect(throws: ClientError.self) { try Client(path: path) }
        #expect(error == .unreachable("lookaheadd is not running (no socket at \(path))"))
    }

    @Test func socketWithoutListenerIsRefused() throws {
        let stale = try staleSocket()
        defer { stale.remove() }
        let error = #expect(throws: ClientError.self) { try Client(path: stale.path) }
        #expect(error == .unreachable("lookaheadd refused connection at \(stale.path) (stale socket?)"))
    }
}
