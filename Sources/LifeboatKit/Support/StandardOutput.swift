import CLinux
import Foundation

/// Standard output as the CLI writes it.
public enum StandardOutput {
    /// Every line reaches a file, pipe, `tee` or `script` when it is printed, not when a 4 KiB
    /// buffer fills: incident tooling reads the output while a run goes.
    public static func lineBuffered() { lifeboat_line_buffer_stdout() }

    /// Writes all of `data` to a descriptor (retrying short writes and EINTR). Unlike
    /// `FileHandle.write`, which traps, a failure (a full disk, a closed pipe) is returned as the
    /// errno, so that it can be reported instead of crashing.
    @discardableResult
    public static func write(_ data: Data, to fd: Int32 = STDOUT_FILENO) -> Int32? {
        // What print(_:) buffered goes first, so the lines keep their order.
        if fd == STDOUT_FILENO { fflush(nil) }
        return data.withUnsafeBytes { raw -> Int32? in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += n
            }
            return nil
        }
    }
}
