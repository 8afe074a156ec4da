import CLinux

/// Standard output as the CLI writes it.
public enum StandardOutput {
    /// Every line reaches a file, pipe, `tee` or `script` when it is printed, not when a 4 KiB
    /// buffer fills: incident tooling reads the output while a run goes.
    public static func lineBuffered() { lifeboat_line_buffer_stdout() }
}
