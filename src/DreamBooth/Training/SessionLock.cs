namespace DreamBooth.Training;

/// <summary>
/// An exclusive lock on a session folder, held while training. It is an OS file lock (released by the OS when the process
/// dies, even when killed), so a crashed run never leaves the session locked.
/// </summary>
public sealed class SessionLock : IDisposable
{
    private readonly FileStream stream;

    private SessionLock(FileStream stream, string path)
    {
        this.stream = stream;
        Path = path;
    }

    public string Path { get; }

    /// <summary>Takes the lock or throws <see cref="SessionBusyException"/> saying which process holds it.</summary>
    public static SessionLock Acquire(string sessionFolder)
    {
        var path = System.IO.Path.Combine(sessionFolder, ".lock");
        try
        {
            var fs = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            // the lock file itself cannot be read by others while locked: say who holds it in a side file
            Loading.AtomicFile.WriteAllText(path + ".owner", $"{Environment.ProcessId} {Environment.MachineName} {DateTime.UtcNow:O}\n");
            return new SessionLock(fs, path);
        }
        catch (IOException)
        {
            string holder = "another process";
            try
            {
                var line = File.ReadLines(path + ".owner").FirstOrDefault();
                if (!string.IsNullOrWhiteSpace(line)) holder = $"process {line.Split(' ')[0]}";
            }
            catch (IOException) { }
            throw new SessionBusyException(sessionFolder,
                $"session '{sessionFolder}' is being trained by {holder} (lock {path}). Wait for that run to finish or stop it; two runs cannot train one session at once.");
        }
    }

    public void Dispose() => stream.Dispose();
}

/// <summary>The session is locked by another training run.</summary>
public sealed class SessionBusyException(string folder, string message) : InvalidOperationException(message)
{
    public string Folder { get; } = folder;
}
