import NIOCore
import NIOEmbedded
import Testing
import LookaheadProtocol
@testable import LookaheadDaemon

private func channel(maxPayload: Int = Frame.defaultMaxPayload) throws -> EmbeddedChannel {
    let channel = EmbeddedChannel()
    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(NIOFrameDecoder(maxPayload: maxPayload)))
    try channel.pipeline.syncOperations.addHandler(MessageToByteHandler(NIOFrameEncoder(maxPayload: maxPayload)))
    return channel
}

private func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

private func header(_ length: UInt32) -> [UInt8] {
    var b = ByteBuffer()
    b.writeInteger(length)
    return Array(b.readableBytesView)
}

@Suite struct NIOFramingTests {
    let messages: [JSONObject] = [
        ["id": 1, "method": "ask", "params": ["prompt": "Natalia sold clips… ½"]],
        ["id": "b", "method": "status"],
        ["id": 3, "method": "cancel", "params": ["id": 1]],
    ]

    @Test func decodesFramesArrivingInPieces() throws {
        let channel = try channel()
        let bytes = try messages.flatMap { try FrameEncoder().encode($0) }
        var seen: [JSONObject] = []
        for start in stride(from: 0, to: bytes.count, by: 3) {
            try channel.writeInbound(buffer(Array(bytes[start..<min(start + 3, bytes.count)])))
            while let object = try channel.readInbound(as: JSONObject.self) { seen.append(object) }
        }
        #expect(seen == messages)
        #expect(try channel.finish().isClean)
    }

    @Test func decodesSeveralFramesInOneRead() throws {
        let channel = try channel()
        try channel.writeInbound(buffer(try messages.flatMap { try FrameEncoder().encode($0) }))
        for message in messages { #expect(try channel.readInbound(as: JSONObject.self) == message) }
        #expect(try channel.readInbound(as: JSONObject.self) == nil)
    }

    @Test func truncatedFrameStaysPending() throws {
        let channel = try channel()
        let bytes = try FrameEncoder().encode(messages[0])
        try channel.writeInbound(buffer(Array(bytes.dropLast())))
        #expect(try channel.readInbound(as: JSONObject.self) == nil)
        try channel.writeInbound(buffer(Array(bytes.suffix(1))))
        #expect(try channel.readInbound(as: JSONObject.self) == messages[0])
    }

    @Test func overLimitHeaderFailsBeforeThePayload() throws {
        let channel = try channel(maxPayload: 100)
        let error = try #require(throws: ProtocolError.self) { try channel.writeInbound(buffer(header(101))) }
        #expect(error.code == .tooLarge)
        #expect(error.message == "frame of 101 bytes exceeds the limit of 100 bytes")
        // Once failed, the stream is not resynchronised: later bytes are dropped, not decoded.
        #expect(throws: ByteToMessageDecoderError.self) {
            try channel.writeInbound(buffer(try FrameEncoder().encode(["id": 1, "method": "status"])))
        }
        #expect(try channel.readInbound(as: JSONObject.self) == nil)
    }

    @Test func zeroLengthFails() throws {
        let channel = try channel()
        let error = try #require(throws: ProtocolError.self) { try channel.writeInbound(buffer(header(0))) }
        #expect(error.code == .invalidRequest)
    }

    @Test func invalidJSONFails() throws {
        let channel = try channel()
        let payload = Array("{\"id\": 1,".utf8)
        let error = try #require(throws: ProtocolError.self) {
            try channel.writeInbound(buffer(header(UInt32(payload.count)) + payload))
        }
        #expect(error.message == "invalid JSON: unexpected end of data at byte 9")
    }

    @Test func nonObjectPayloadFails() throws {
        let channel = try channel()
        let error = try #require(throws: ProtocolError.self) { try channel.writeInbound(buffer(header(3) + Array("[1]".utf8))) }
        #expect(error.message == "a message must be a JSON object, got an array")
    }

    @Test func encodesObjectsAsFrames() throws {
        let channel = try channel()
        let reply = ResultReply(id: 1, result: ["text": "72", "alpha": 0.7])
        try channel.writeOutbound(reply.json)
        let out = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(Array(out.readableBytesView) == (try FrameEncoder().encode(reply.json)))
        #expect(Array(out.readableBytesView.dropFirst(4)) == Array(#"{"id":1,"result":{"text":"72","alpha":0.7}}"#.utf8))
    }

    @Test func encoderRefusesOversizedReplies() throws {
        let channel = try channel(maxPayload: 20)
        let error = try #require(throws: ProtocolError.self) {
            try channel.writeOutbound(["id": 1, "result": .string(String(repeating: "z", count: 50))] as JSONObject)
        }
        #expect(error.code == .tooLarge)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
    }
}
