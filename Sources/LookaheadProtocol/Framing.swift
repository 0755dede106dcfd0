/// A frame is a 4-byte big-endian payload length, then the payload: one UTF-8 JSON object.
public enum Frame {
    public static let headerSize = 4
    /// 8 MiB: far above any prompt or reply here, and all a client can make the daemon hold for one frame.
    public static let defaultMaxPayload = 8 << 20

    /// Judges a declared length the moment the header is in, before any of the payload is buffered.
    public static func problem(length: Int, maxPayload: Int) -> ProtocolError? {
        if length == 0 { return ProtocolError(.invalidRequest, "empty frame: a frame carries one JSON object") }
        if length > maxPayload {
            return ProtocolError(.tooLarge, "frame of \(length) bytes exceeds the limit of \(maxPayload) bytes")
        }
        return nil
    }

    public static func checked(maxPayload: Int) -> Int {
        precondition((1...Int(UInt32.max)).contains(maxPayload), "a frame's length must fit its 4-byte header")
        return maxPayload
    }
}

/// Message → frame bytes.
public struct FrameEncoder: Sendable {
    public let maxPayload: Int

    public init(maxPayload: Int = Frame.defaultMaxPayload) { self.maxPayload = Frame.checked(maxPayload: maxPayload) }

    /// Throws `too_large` rather than send a frame the peer would have to refuse.
    public func encode(_ message: JSONObject) throws(ProtocolError) -> [UInt8] {
        let payload = JSONCodec.encode(.object(message))
        if let problem = Frame.problem(length: payload.count, maxPayload: maxPayload) { throw problem }
        let length = UInt32(payload.count)
        var frame: [UInt8] = []
        frame.reserveCapacity(Frame.headerSize + payload.count)
        frame += [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
        frame += payload
        return frame
    }
}

/// Bytes, in chunks of any size → complete payloads. Only the frame in progress is held, and only
/// once its header has passed the checks; a stream with a bad frame cannot be resynchronised, so
/// after one the decoder hands out the frames before it, then the error, and takes nothing more.
public struct FrameDecoder: Sendable {
    public let maxPayload: Int
    private var header: UInt32 = 0
    private var headerBytes = 0
    private var payload: [UInt8] = []
    private var ready: [[UInt8]] = []
    private var failure: ProtocolError?

    public init(maxPayload: Int = Frame.defaultMaxPayload) { self.maxPayload = Frame.checked(maxPayload: maxPayload) }

    /// Bytes of the incomplete frame held now, header included.
    public var pendingBytes: Int { headerBytes + payload.count }

    public mutating func feed(_ bytes: some Collection<UInt8>) {
        var rest = bytes[...]
        while !rest.isEmpty, failure == nil {
            if headerBytes < Frame.headerSize {
                let take = min(Frame.headerSize - headerBytes, rest.count)
                for byte in rest.prefix(take) { header = header << 8 | UInt32(byte) }
                headerBytes += take
                rest = rest.dropFirst(take)
                if headerBytes == Frame.headerSize, let problem = Frame.problem(length: Int(header), maxPayload: maxPayload) {
                    failure = problem
                }
            } else {
                let take = min(Int(header) - payload.count, rest.count)
                payload += rest.prefix(take)
                rest = rest.dropFirst(take)
            }
            if headerBytes == Frame.headerSize, payload.count == Int(header), failure == nil {
                ready.append(payload)
                payload = []
                header = 0
                headerBytes = 0
            }
        }
    }

    /// The next complete payload; nil while the next frame is incomplete.
    public mutating func next() throws(ProtocolError) -> [UInt8]? {
        if !ready.isEmpty { return ready.removeFirst() }
        if let failure { throw failure }
        return nil
    }
}
