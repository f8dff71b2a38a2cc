using System.Text.RegularExpressions;

namespace DreamBooth.Loading.Hub;

/// <summary>
/// The Hugging Face cache layout (huggingface_hub <c>file_download.py</c>), so caches are shared with Python:
/// <code>
/// {cache}/models--{org}--{name}/blobs/{etag}                  file contents, named by ETag (sha256 for LFS files)
/// {cache}/models--{org}--{name}/snapshots/{commit}/{filename}  symlink to the blob (a copy where links are not allowed)
/// {cache}/models--{org}--{name}/refs/{revision}                the commit hash that revision pointed to
/// </code>
/// </summary>
public sealed partial class HubCache
{
    /// <summary>Opens the cache rooted at <paramref name="cacheDir"/> (created on first write).</summary>
    public HubCache(string cacheDir) => Root = Path.GetFullPath(cacheDir);

    /// <summary>The cache root folder.</summary>
    public string Root { get; }

    /// <summary><c>models--org--name</c>, the folder name huggingface_hub uses for a model repository.</summary>
    public static string RepoFolderName(string repoId) => "models--" + repoId.Replace("/", "--", StringComparison.Ordinal);

    /// <summary>The repository's folder in the cache.</summary>
    public string RepoDir(string repoId) => Path.Combine(Root, RepoFolderName(repoId));

    /// <summary>Where the blob with this ETag lives.</summary>
    public string BlobPath(string repoId, string etag) => Path.Combine(RepoDir(repoId), "blobs", etag);

    /// <summary>The snapshot folder of a commit.</summary>
    public string SnapshotDir(string repoId, string commit) => Path.Combine(RepoDir(repoId), "snapshots", commit);

    /// <summary>Where a file of a commit appears.</summary>
    public string SnapshotPath(string repoId, string commit, string filename) =>
        Path.Combine(SnapshotDir(repoId, commit), filename.Replace('/', Path.DirectorySeparatorChar));

    /// <summary>True for a full 40-hex git commit hash.</summary>
    public static bool IsCommitHash(string revision) => CommitRegex().IsMatch(revision);

    /// <summary>The commit a revision resolves to in the cache: itself when it is a commit hash, else refs/{revision}; null when unknown.</summary>
    public string? ResolveRevision(string repoId, string revision)
    {
        if (IsCommitHash(revision)) return revision;
        var refPath = RefPath(repoId, revision);
        if (!File.Exists(refPath)) return null;
        var commit = File.ReadAllText(refPath).Trim();
        return IsSafeName(commit) ? commit : null;
    }

    /// <summary>Records that <paramref name="revision"/> points at <paramref name="commit"/> (no-op when the revision is the commit).</summary>
    public void WriteRef(string repoId, string revision, string commit)
    {
        if (revision == commit) return;
        var refPath = RefPath(repoId, revision);
        if (File.Exists(refPath) && File.ReadAllText(refPath).Trim() == commit) return;
        AtomicFile.WriteAllText(refPath, commit);
    }

    /// <summary>The cached file for (revision, filename), or null when not cached.</summary>
    public string? TryGetCachedFile(string repoId, string filename, string revision)
    {
        var commit = ResolveRevision(repoId, revision);
        if (commit is null) return null;
        var p = SnapshotPath(repoId, commit, filename);
        return File.Exists(p) ? p : null;
    }

    /// <summary>Makes snapshots/{commit}/{filename} point at the blob: a relative symlink like huggingface_hub, or a copy where
    /// symlinks cannot be made (e.g. Windows without developer mode).</summary>
    public void LinkSnapshot(string blobPath, string snapshotPath)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(snapshotPath)!);
        if (File.Exists(snapshotPath) || Directory.Exists(snapshotPath) || new FileInfo(snapshotPath).LinkTarget is not null)
            File.Delete(snapshotPath);
        var relative = Path.GetRelativePath(Path.GetDirectoryName(snapshotPath)!, blobPath);
        try
        {
            File.CreateSymbolicLink(snapshotPath, relative);
            return;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        catch (PlatformNotSupportedException) { }
        AtomicFile.Write(snapshotPath, dst => { using var src = File.OpenRead(blobPath); src.CopyTo(dst, 1 << 20); });
    }

    string RefPath(string repoId, string revision) =>
        Path.Combine(RepoDir(repoId), "refs", revision.Replace('/', Path.DirectorySeparatorChar));

    /// <summary>ETags and commits become file names: only plain characters are accepted.</summary>
    internal static bool IsSafeName(string s) => SafeNameRegex().IsMatch(s);

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitRegex();

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")]
    private static partial Regex SafeNameRegex();
}
