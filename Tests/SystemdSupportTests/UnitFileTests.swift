import Foundation
import TestSupport
import Testing

/// The units are checked by scripts/verify-units.sh (also usable by hand and in CI), which runs
/// `systemd-analyze verify` and an offline `systemd-analyze security` on them as installed.
@Suite(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-analyze"),
                "systemd-analyze comes with Debian's systemd package"))
struct UnitFileTests {
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func theShippedUnitsVerifyClean() throws {
        let (status, output) = try Self.verify()
        #expect(status == 0, "\(output)")
    }

    /// Guards the check itself: verify exits 0 on a bad unit, so the script must read its stderr.
    @Test func aBrokenUnitFailsVerification() throws {
        let units = try makeTemporaryDirectory()
        defer { removeTree(units) }
        let systemd = Self.repository.appendingPathComponent("systemd")
        let service = try String(contentsOf: systemd.appendingPathComponent("lookaheadd.service"), encoding: .utf8)
        try service.replacingOccurrences(of: "WatchdogSec=60", with: "WatchdogSec=sixty")
            .write(toFile: units + "/lookaheadd.service", atomically: true, encoding: .utf8)
        for unit in ["lookaheadd.socket", "lookaheadd-rpc@.service"] {
            try FileManager.default.copyItem(atPath: systemd.appendingPathComponent(unit).path, toPath: units + "/" + unit)
        }

        let (status, output) = try Self.verify(units)
        #expect(status != 0)
        #expect(output.contains("sixty"), "\(output)")
    }

    private static func verify(_ arguments: String...) throws -> (Int32?, String) {
        let run = try runCommand(repository.appendingPathComponent("scripts/verify-units.sh").path, arguments, timeout: 300)
        return (run.exitCode, run.stdout + run.stderr)
    }
}

/// The service's resource limits (systemd/lookaheadd.service): present, and in an order that lets
/// the kernel throttle before it kills.
@Suite struct ResourceLimitTests {
    static let service = UnitFileTests.repository.appendingPathComponent("systemd/lookaheadd.service")

    /// `Key=value` of the unit's [Service] section; a key set twice keeps its last value, as systemd does.
    static func settings() throws -> [String: String] {
        let text = try String(contentsOf: service, encoding: .utf8)
        var values: [String: String] = [:]
        var inService = false
        for line in text.split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if line.hasPrefix("[") { inService = line == "[Service]"; continue }
            guard inService, !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") else { continue }
            values[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return values
    }

    /// systemd's byte sizes: a number with an optional K, M, G or T (powers of 1024).
    static func bytes(_ text: String?) -> Int? {
        guard let text, let last = text.last else { return nil }
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        if let unit = units[last] { return Int(text.dropLast()).map { $0 * unit } }
        return Int(text)
    }

    @Test func memoryIsThrottledBeforeItIsCapped() throws {
        let unit = try Self.settings()
        let high = try #require(Self.bytes(unit["MemoryHigh"]), "MemoryHigh= missing or not a size")
        let max = try #require(Self.bytes(unit["MemoryMax"]), "MemoryMax= missing or not a size")
        #expect(high < max, "above MemoryHigh the kernel throttles; it must come before the kill at MemoryMax")
        // The default models alone take about 1.6 GB; with KV cache and lines in flight, room to spare.
        #expect(high >= 4 << 30)
    }

    @Test func descriptorsAndTasksAreBounded() throws {
        let unit = try Self.settings()
        let files = try #require(unit["LimitNOFILE"].flatMap { Int($0) }, "LimitNOFILE= missing or not a number")
        // Above systemd's soft default of 1024, for the connections a busy daemon holds.
        #expect(files > 1024)
        let tasks = try #require(unit["TasksMax"].flatMap { Int($0) }, "TasksMax= missing or not a number")
        // ggml's workers (up to 256) and libdispatch's pool (up to 255) must fit.
        #expect(tasks >= 512)
    }
}
