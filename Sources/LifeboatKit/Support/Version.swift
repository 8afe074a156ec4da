public enum LifeboatVersion { public static let string = "0.1.0" }
