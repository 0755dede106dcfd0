import LookaheadProtocol
import NIOCore

/// Inbound bytes → one payload per frame, for `ByteToMessageHandler`. The declared length is
/// judged as soon as the 4 header bytes are in, so an oversized frame is refused before NIO
/// buffers its payload; a failure (`too_large`, an empty frame) is a thrown `ProtocolError`,
/// which reaches the pipeline as `errorCaught`, and NIO then drops whatever else arrives.
/// The payload is handed on unparsed: the connection decides where the JSON is parsed (a large
/// frame off the event loop).
/// Whenever bytes of an unfinished frame are left after a read, `FrameDecoderEvent.partialFrame`
/// goes down the pipeline, so the connection can time out a peer that stops mid-frame.
public struct NIOFrameDecoder: ByteToMessageDecoder, Sendable {
    public typealias InboundOut = ByteBuffer

    public let maxPayload: Int

    public init(maxPayload: Int = Frame.defaultMaxPayload) { self.maxPayload = Frame.checked(maxPayload: maxPayload) }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else {
            return pending(context, buffer)
        }
        if let problem = Frame.problem(length: Int(length), maxPayload: maxPayload) { throw problem }
        guard buffer.readableBytes >= Frame.headerSize + Int(length) else { return pending(context, buffer) }
        buffer.moveReaderIndex(forwardBy: Frame.headerSize)
        context.fireChannelRead(Self.wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }

    private func pending(_ context: ChannelHandlerContext, _ buffer: ByteBuffer) -> DecodingState {
        if buffer.readableBytes > 0 { context.fireUserInboundEventTriggered(FrameDecoderEvent.partialFrame) }
        return .needMoreData
    }
}

public enum FrameDecoderEvent: Sendable {
    /// Part of a frame has arrived and the rest has not.
    case partialFrame
}
