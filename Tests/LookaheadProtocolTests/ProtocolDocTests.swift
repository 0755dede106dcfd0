import FoundationEssentials
import Testing
@testable import LookaheadProtocol

/// The example exchanges in docs/protocol.md are real frames: each client frame parses as a
/// request, unless the daemon's next frame documents an `invalid_request` error, which must then
/// be exactly the error this module gives; each daemon frame parses as a server message.
@Suite struct ProtocolDocTests {
    let lines: [Substring] = {
        let doc = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../docs/protocol.md").standardized
        return ((try? String(contentsOf: doc, encoding: .utf8)) ?? "").split(separator: "\n")
    }()

    private func frames(_ arrow: String) -> [(index: Int, payload: [UInt8])] {
        lines.indices.filter { lines[$0].hasPrefix(arrow + " {") }.map { ($0, Array(lines[$0].dropFirst(2).utf8)) }
    }

    @Test func daemonFramesAreServerMessages() throws {
        let replies = frames("←")
        #expect(replies.count >= 25)
        for (_, payload) in replies { _ = try ServerMessage(json: JSONCodec.decodeObject(payload)) }
    }

    @Test func clientFramesAreRequestsOrFailAsDocumented() throws {
        let requests = frames("→")
        let replies = frames("←")
        #expect(requests.count >= 18)
        var refused = 0
        for (index, payload) in requests {
            let answer = try #require(replies.first { $0.index > index })
            let documented = try ServerMessage(json: JSONCodec.decodeObject(answer.payload))
            if case .error(let reply) = documented, reply.error.code == .invalidRequest {
                let error = try #require(throws: ProtocolError.self, "\(lines[index])") {
                    try Request(json: JSONCodec.decodeObject(payload))
                }
                #expect(error == reply.error)
                refused += 1
            } else {
                _ = try Request(json: JSONCodec.decodeObject(payload))
            }
        }
        #expect(refused == 2)
    }
}
