import NIOCore
import NIOEmbedded
import Testing
import LookaheadProtocol
@testable import LookaheadDaemon

private func channel(maxPayload: Int = Frame.defaultMaxPayload) throws -> EmbeddedChannel {
    let channel = EmbeddedChannel()
    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(NIOFrameDecoder(maxPayload: maxPayload)))
    return channel
}

private func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

extension EmbeddedChannel {
    /// The next payload handed on, read as the connection reads it.
    fileprivate func readObject() throws -> JSONObject? {
        try readInbound(as: ByteBuffer.self).map { try JSONCodec.decodeObject($0.readableBytesView) }
    }
}

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
            while let object = try channel.readObject() { seen.append(object) }
        }
        #expect(seen == messages)
        #expect(try channel.finish().isClean)
    }

    @Test func decodesSeveralFramesInOneRead() throws {
        let channel = try channel()
        try channel.writeInbound(buffer(try messages.flatMap { try FrameEncoder().encode($0) }))
        for message in messages { #expect(try channel.readObject() == message) }
        #expect(try channel.readObject() == nil)
    }

    @Test func truncatedFrameStaysPending() throws {
        let channel = try channel()
        let bytes = try FrameEncoder().encode(messages[0])
        try channel.writeInbound(buffer(Array(bytes.dropLast())))
        #expect(try channel.readObject() == nil)
        try channel.writeInbound(buffer(Array(bytes.suffix(1))))
        #expect(try channel.readObject() == messages[0])
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
        #expect(try channel.readObject() == nil)
    }

    @Test func zeroLengthFails() throws {
        let channel = try channel()
        let error = try #require(throws: ProtocolError.self) { try channel.writeInbound(buffer(header(0))) }
        #expect(error.code == .invalidRequest)
    }

    @Test func aFrameCutShortIsAnnouncedSoItCanTimeOut() throws {
        let channel = try channel()
        let events = PartialFrames()
        try channel.pipeline.syncOperations.addHandler(events)
        let bytes = try FrameEncoder().encode(messages[1])
        try channel.writeInbound(buffer(bytes))
        #expect(events.count == 0)
        try channel.writeInbound(buffer(Array(bytes.prefix(2))))
        #expect(events.count == 1)
        try channel.writeInbound(buffer(Array(bytes.dropFirst(2))))
        #expect(try channel.readObject() == messages[1])
        #expect(events.count == 1)
    }
}

/// Counts `partialFrame` events.
private final class PartialFrames: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var count = 0
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .partialFrame? = event as? FrameDecoderEvent { count += 1 }
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { context.fireChannelRead(data) }
}
