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
        try FileManager.default.copyItem(atPath: systemd.appendingPathComponent("lookaheadd.socket").path,
                                         toPath: units + "/lookaheadd.socket")

        let (status, output) = try Self.verify(units)
        #expect(status != 0)
        #expect(output.contains("sixty"), "\(output)")
    }

    private static func verify(_ arguments: String...) throws -> (Int32?, String) {
        let run = try runCommand(repository.appendingPathComponent("scripts/verify-units.sh").path, arguments, timeout: 300)
        return (run.exitCode, run.stdout + run.stderr)
    }
}
