namespace DreamBooth.Tests.Infrastructure;

/// <summary>Locates the repository root and the shared parity fixtures (../shared/parity beside the checkout).</summary>
public static class TestPaths
{
    static readonly Lazy<string> Root = new(() =>
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "DreamBoothNotebooks.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException(
            $"Could not find DreamBoothNotebooks.sln above {AppContext.BaseDirectory}; run the tests from the repository.");
    });

    public static string RepoRoot => Root.Value;

    /// <summary>../shared/parity relative to the repository root; fails with a clear message if absent.</summary>
    public static string Parity
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("DREAMBOOTH_PARITY_DIR");
            var p = !string.IsNullOrEmpty(env) ? env : Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "parity"));
            if (!Directory.Exists(p))
                throw new DirectoryNotFoundException(
                    $"Parity fixtures not found at {p}. They live in ../shared/parity beside the checkout " +
                    "(or set DREAMBOOTH_PARITY_DIR to their folder).");
            return p;
        }
    }

    public static string ParityPath(params string[] parts) => Path.Combine([Parity, .. parts]);

    /// <summary>A fresh temporary folder, deleted when disposed.</summary>
    public static TempDir NewTempDir(string prefix = "dbtest") => new(prefix);
}

public sealed class TempDir : IDisposable
{
    public TempDir(string prefix)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
