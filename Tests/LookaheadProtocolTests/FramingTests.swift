import Testing
@testable import LookaheadProtocol

private func frame(_ message: JSONObject) throws -> [UInt8] { try FrameEncoder().encode(message) }

private func header(_ length: UInt32) -> [UInt8] {
    [UInt8(length >> 24), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
}

/// Every payload the decoder has ready, decoded.
private func drain(_ decoder: inout FrameDecoder) throws -> [JSONObject] {
    var out: [JSONObject] = []
    while let payload = try decoder.next() { out.append(try JSONCodec.decodeObject(payload)) }
    return out
}

@Suite struct FramingTests {
    let messages: [JSONObject] = [
        ["id": 1, "method": "status"],
        ["id": "two", "event": "step", "text": "héllo 😀\n\n", "phase": "thinking", "from_draft": true],
        ["id": 3, "result": ["text": .string(String(repeating: "x", count: 1000)), "tokens": 250]],
        ["error": ["code": "too_large", "message": "m"]],
    ]

    @Test func encoderWritesBigEndianLengthThenJSON() throws {
        let bytes = try frame(["a": 1])
        #expect(bytes == header(7) + Array(#"{"a":1}"#.utf8))
        let long = try frame(["t": .string(String(repeating: "y", count: 70_000))])
        #expect(Array(long.prefix(4)) == [0, 1, 0x11, 0x78])  // 70_008 = 0x011178
        #expect(long.count == 4 + 70_008)
    }

    @Test func encoderRefusesAPayloadOverTheLimit() throws {
        let encoder = FrameEncoder(maxPayload: 10)
        #expect(try encoder.encode(["a": "12"]).count == 4 + 10)
        let error = try #require(throws: ProtocolError.self) { try encoder.encode(["a": "123"]) }
        #expect(error.code == .tooLarge)
        #expect(error.message == "frame of 11 bytes exceeds the limit of 10 bytes")
    }

    @Test func decoderTakesFramesWhole() throws {
        var decoder = FrameDecoder()
        decoder.feed(try messages.flatMap(frame))
        #expect(try drain(&decoder) == messages)
        #expect(decoder.pendingBytes == 0)
    }

    @Test func decoderTakesFramesByteByByte() throws {
        var decoder = FrameDecoder()
        var seen: [JSONObject] = []
        for byte in try messages.flatMap(frame) {
            decoder.feed([byte])
            seen += try drain(&decoder)
        }
        #expect(seen == messages)
        #expect(decoder.pendingBytes == 0)
    }

    @Test(arguments: [2, 3, 5, 7, 13, 1000, 4096])
    func decoderTakesFramesInOddChunks(_ size: Int) throws {
        let bytes = try messages.flatMap(frame)
        var decoder = FrameDecoder()
        var seen: [JSONObject] = []
        for start in stride(from: 0, to: bytes.count, by: size) {
            decoder.feed(bytes[start..<min(start + size, bytes.count)])
            seen += try drain(&decoder)
        }
        #expect(seen == messages)
    }

    @Test func truncatedFrameStaysPending() throws {
        let bytes = try frame(["id": 1, "method": "status"])
        var decoder = FrameDecoder()
        decoder.feed(bytes.dropLast())
        #expect(try decoder.next() == nil)
        #expect(decoder.pendingBytes == bytes.count - 1)
        decoder.feed(bytes.suffix(1))
        #expect(try drain(&decoder) == [["id": 1, "method": "status"]])
    }

    @Test func partialHeaderStaysPending() throws {
        var decoder = FrameDecoder()
        decoder.feed([0, 0, 0])
        #expect(try decoder.next() == nil)
        #expect(decoder.pendingBytes == 3)
    }

    @Test func overLimitLengthIsRefusedBeforeThePayloadArrives() throws {
        var decoder = FrameDecoder()
        decoder.feed(header(UInt32(Frame.defaultMaxPayload + 1)))
        let error = try #require(throws: ProtocolError.self) { try decoder.next() }
        #expect(error.code == .tooLarge)
        #expect(error.message == "frame of 8388609 bytes exceeds the limit of 8388608 bytes")
        // Nothing more is taken in.
        decoder.feed([UInt8](repeating: 0x20, count: 1000))
        #expect(decoder.pendingBytes == 4)
        #expect(throws: ProtocolError.self) { try decoder.next() }
    }

    @Test func configuredLimitApplies() throws {
        var decoder = FrameDecoder(maxPayload: 16)
        decoder.feed(try frame(["a": "01234567"]))  // {"a":"01234567"}: 16 bytes, at the limit
        decoder.feed(header(17))
        #expect(try decoder.next().map { $0.count } == 16)
        let error = try #require(throws: ProtocolError.self) { try decoder.next() }
        #expect(error.code == .tooLarge)
    }

    @Test func zeroLengthIsRefused() throws {
        var decoder = FrameDecoder()
        decoder.feed(header(0))
        let error = try #require(throws: ProtocolError.self) { try decoder.next() }
        #expect(error.code == .invalidRequest)
        #expect(error.message.contains("empty frame"))
    }

    @Test func framesBeforeABadOneAreDelivered() throws {
        var decoder = FrameDecoder()
        decoder.feed(try frame(["n": 1]) + frame(["n": 2]) + header(0) + frame(["n": 3]))
        #expect(try decoder.next().map { try JSONCodec.decodeObject($0) } == ["n": 1])
        #expect(try decoder.next().map { try JSONCodec.decodeObject($0) } == ["n": 2])
        #expect(throws: ProtocolError.self) { try decoder.next() }
        #expect(throws: ProtocolError.self) { try decoder.next() }
    }

    @Test func invalidJSONInAFrameIsReported() throws {
        var decoder = FrameDecoder()
        let payload = Array(#"{"id": 1, "method": }"#.utf8)
        decoder.feed(header(UInt32(payload.count)) + payload)
        let bytes = try #require(try decoder.next())
        let error = try #require(throws: ProtocolError.self) { try JSONCodec.decodeObject(bytes) }
        #expect(error.code == .invalidRequest)
        #expect(error.message == "invalid JSON: unexpected character at byte 20")
    }
}
