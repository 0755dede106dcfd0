import LookaheadProtocol
import NIOCore

/// Inbound bytes → one JSON object per frame, for `ByteToMessageHandler`. The declared length is
/// judged as soon as the 4 header bytes are in, so an oversized frame is refused before NIO
/// buffers its payload. Every failure (`too_large`, an empty frame, bad JSON, a non-object) is a
/// thrown `ProtocolError`, which reaches the pipeline as `errorCaught`; NIO then drops whatever
/// else arrives, so the connection's owner answers with an error frame and closes.
/// A frame cut short by the peer closing is dropped with the connection: nobody is left to answer.
public struct NIOFrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = JSONObject

    public let maxPayload: Int

    public init(maxPayload: Int = Frame.defaultMaxPayload) { self.maxPayload = Frame.checked(maxPayload: maxPayload) }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        if let problem = Frame.problem(length: Int(length), maxPayload: maxPayload) { throw problem }
        guard buffer.readableBytes >= Frame.headerSize + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: Frame.headerSize)
        let payload = buffer.readSlice(length: Int(length))!
        context.fireChannelRead(Self.wrapInboundOut(try JSONCodec.decodeObject(payload.readableBytesView)))
        return .continue
    }
}

/// Outbound JSON objects → frames, for `MessageToByteHandler`. A reply too large for the peer to
/// accept fails its write with `too_large` instead of going out.
public struct NIOFrameEncoder: MessageToByteEncoder, Sendable {
    public typealias OutboundIn = JSONObject

    private let frames: FrameEncoder

    public init(maxPayload: Int = Frame.defaultMaxPayload) { frames = FrameEncoder(maxPayload: maxPayload) }

    public func encode(data: JSONObject, out: inout ByteBuffer) throws {
        out.writeBytes(try frames.encode(data))
    }
}
