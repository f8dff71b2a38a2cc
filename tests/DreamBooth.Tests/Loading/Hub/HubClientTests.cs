using System.Text;
using DreamBooth.Loading.Hub;
using DreamBooth.Tests.Infrastructure;
using Xunit.Abstractions;

namespace DreamBooth.Tests.Loading.Hub;

sealed class ListProgress<T> : IProgress<T>
{
    readonly List<T> _items = [];
    public void Report(T value) { lock (_items) _items.Add(value); }
    public List<T> Items { get { lock (_items) return [.. _items]; } }
}

/// <summary>HubClient against <see cref="FakeHubServer"/> on 127.0.0.1: cache layout, redirects, auth, errors, resume, checksum, offline.</summary>
public sealed class HubClientTests(ITestOutputHelper output)
{
    const string Commit = "0123456789abcdef0123456789abcdef01234567";
    const string Secret = "hf_TestSecretToken_9f8e7d6c5b4a";

    static byte[] Bytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    static FakeRepo Repo(string? gated = null)
    {
        var r = new FakeRepo { Commit = Commit, GatedToken = gated };
        r.Files["config.json"] = Encoding.UTF8.GetBytes("{\"hidden_size\": 32}");
        r.Files["weights.safetensors"] = Bytes(1_000_000, 1);
        r.Lfs.Add("weights.safetensors");
        return r;
    }

    static HubClient Client(FakeHubServer server, TempDir cache, string? token = null, bool offline = false, List<string>? log = null) =>
        new(new HubOptions
        {
            Endpoint = server.Endpoint, CacheDir = cache.Path, Token = token, Offline = offline, UseStoredToken = false,
            Timeout = TimeSpan.FromSeconds(10), MaxRetries = 3, RetryDelay = TimeSpan.FromMilliseconds(10),
        }, log is null ? null : m => { lock (log) log.Add(m); });

    [Fact]
    public async Task SmallFileLandsInHuggingFaceCacheLayout()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/model"] = Repo();
        using var cache = TestPaths.NewTempDir();
        using var client = Client(server, cache);

        var progress = new ListProgress<DownloadProgress>();
        var path = await client.DownloadFileAsync("org/model", "config.json", progress: progress);

        var size = server.Repos["org/model"].Files["config.json"].Length;
        Assert.Equal(("config.json", (long)size, (long?)size), (progress.Items[^1].File, progress.Items[^1].BytesDone, progress.Items[^1].TotalBytes));
        var repoDir = Path.Combine(cache.Path, "models--org--model");
        Assert.Equal(Path.Combine(repoDir, "snapshots", Commit, "config.json"), path);
        Assert.Equal(server.Repos["org/model"].Files["config.json"], File.ReadAllBytes(path));
        Assert.Equal(Commit, File.ReadAllText(Path.Combine(repoDir, "refs", "main")));
        var blob = Path.Combine(repoDir, "blobs", FakeHubServer.GitSha1(server.Repos["org/model"].Files["config.json"]));
        Assert.True(File.Exists(blob), "blob named by the ETag");
        if (!OperatingSystem.IsWindows())
            Assert.Equal(Path.GetFullPath(blob), Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, new FileInfo(path).LinkTarget!)));
        Assert.Contains(server.Requests, r => r.Method == "HEAD" && r.Path == "/org/model/resolve/main/config.json");

        // Second call: metadata only, no second body download.
        var gets = server.Requests.Count(r => r.Method == "GET");
        Assert.Equal(path, await client.DownloadFileAsync("org/model", "config.json"));
        Assert.Equal(gets, server.Requests.Count(r => r.Method == "GET"));
    }

    [Fact]
    public async Task LfsFileFollowsRedirectToCdnAndIsStoredUnderItsSha256()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/model"] = Repo();
        using var cache = TestPaths.NewTempDir();
        using var client = Client(server, cache);
        var progress = new ListProgress<DownloadProgress>();

        var path = await client.DownloadFileAsync("org/model", "weights.safetensors", "main", progress);

        var bytes = server.Repos["org/model"].Files["weights.safetensors"];
        Assert.Equal(bytes, File.ReadAllBytes(path));
        var sha = FakeHubServer.Sha256(bytes);
        Assert.True(File.Exists(Path.Combine(cache.Path, "models--org--model", "blobs", sha)));
        Assert.Contains(server.Requests, r => r.Method == "GET" && r.Path == $"/cdn/{sha}");
        var last = progress.Items[^1];
        Assert.Equal(("weights.safetensors", (long)bytes.Length, (long?)bytes.Length), (last.File, last.BytesDone, last.TotalBytes));
        Assert.Empty(Directory.GetFiles(cache.Path, "*.incomplete", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task TokenGoesToTheHubButNotToAnotherHostItRedirectsTo()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/gated"] = Repo(gated: Secret);
        server.CdnBase = $"http://localhost:{server.Port}"; // another host name, same loopback server
        using var cache = TestPaths.NewTempDir();
        using var client = Client(server, cache, token: Secret);

        var path = await client.DownloadFileAsync("org/gated", "weights.safetensors");

        Assert.Equal(server.Repos["org/gated"].Files["weights.safetensors"], File.ReadAllBytes(path));
        var resolves = server.Requests.Where(r => r.Path.Contains("/resolve/")).ToList();
        var cdn = server.Requests.Where(r => r.Path.StartsWith("/cdn/")).ToList();
        Assert.NotEmpty(resolves);
        Assert.NotEmpty(cdn);
        Assert.All(resolves, r => Assert.Equal($"Bearer {Secret}", r.Header("Authorization")));
        Assert.All(cdn, r => Assert.Null(r.Header("Authorization")));
        Assert.All(cdn, r => Assert.StartsWith("localhost", r.Header("Host")));
    }

    [Fact]
    public async Task GatedRepoWithoutTokenExplainsWhatToDoAndWithTokenWorks()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/gated"] = Repo(gated: Secret);
        using var cache = TestPaths.NewTempDir();

        using (var anon = Client(server, cache, token: null))
        {
            Assert.False(anon.HasToken); // UseStoredToken = false: anonymous whatever this machine has stored
            var e = await Assert.ThrowsAsync<HubException>(() => anon.DownloadFileAsync("org/gated", "config.json"));
            Assert.Equal(HubErrorKind.Unauthorized, e.Kind);
            Assert.Equal(401, e.StatusCode);
            Assert.Contains("gated or private", e.Message);
            Assert.Contains("accept its licence", e.Message);
            Assert.Contains("HF_TOKEN", e.Message);
            Assert.Contains("org/gated", e.Message);
        }
        using (var wrong = Client(server, cache, token: "hf_wrongtoken"))
        {
            var e = await Assert.ThrowsAsync<HubException>(() => wrong.DownloadFileAsync("org/gated", "config.json"));
            Assert.Equal(HubErrorKind.Unauthorized, e.Kind);
            Assert.Contains("refused", e.Message);
            Assert.DoesNotContain("hf_wrongtoken", e.ToString());
        }
        using var ok = Client(server, cache, token: Secret);
        var path = await ok.DownloadFileAsync("org/gated", "config.json");
        Assert.Equal(server.Repos["org/gated"].Files["config.json"], File.ReadAllBytes(path));
    }

    [Fact]
    public async Task NotFoundNamesTheRepositoryFileOrRevision()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/model"] = Repo();
        using var cache = TestPaths.NewTempDir();
        using var client = Client(server, cache);

        var repo = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync("org/nope", "config.json"));
        Assert.Equal((HubErrorKind.RepositoryNotFound, 404), (repo.Kind, repo.StatusCode));
        Assert.Contains("org/nope", repo.Message);

        var file = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync("org/model", "unet/missing.bin"));
        Assert.Equal(HubErrorKind.FileNotFound, file.Kind);
        Assert.Contains("unet/missing.bin", file.Message);

        var rev = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync("org/model", "config.json", "v9"));
        Assert.Equal(HubErrorKind.RevisionNotFound, rev.Kind);
        Assert.Contains("'v9'", rev.Message);

        var list = await Assert.ThrowsAsync<HubException>(() => client.GetRepoInfoAsync("org/model", "v9"));
        Assert.Equal(HubErrorKind.RevisionNotFound, list.Kind);
        Assert.Empty(Directory.EnumerateFiles(cache.Path, "*", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task DroppedConnectionIsResumedWithARangeRequest()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/model"] = Repo();
        var bytes = server.Repos["org/model"].Files["weights.safetensors"];
        var sha = FakeHubServer.Sha256(bytes);
        server.DropCdn(sha, afterBytes: 300_000, times: 1);
        using var cache = TestPaths.NewTempDir();
        var log = new List<string>();
        using var client = Client(server, cache, log: log);

        var path = await client.DownloadFileAsync("org/model", "weights.safetensors");

        Assert.Equal(bytes, File.ReadAllBytes(path));
        var gets = server.Requests.Where(r => r.Method == "GET" && r.Path == $"/cdn/{sha}").ToList();
        Assert.Equal(2, gets.Count);
        Assert.Null(gets[0].Header("Range"));
        Assert.Equal("bytes=300000-", gets[1].Header("Range"));
        Assert.Contains(log, l => l.Contains("interrupted at 300000"));
        Assert.Empty(Directory.GetFiles(cache.Path, "*.incomplete", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task AServerWithoutRangeSupportMakesTheDownloadRestartCleanly()
    {
        await using var server = new FakeHubServer { IgnoreRange = true };
        server.Repos["org/model"] = Repo();
        var bytes = server.Repos["org/model"].Files["weights.safetensors"];
        server.DropCdn(FakeHubServer.Sha256(bytes), afterBytes: 250_000, times: 1);
        using var cache = TestPaths.NewTempDir();
        var log = new List<string>();
        using var client = Client(server, cache, log: log);

        Assert.Equal(bytes, File.ReadAllBytes(await client.DownloadFileAsync("org/model", "weights.safetensors")));
        Assert.Contains(log, l => l.Contains("ignored the Range request"));
    }

    [Fact]
    public async Task ServiceUnavailableIsRetried()
    {
        await using var server = new FakeHubServer { Fail503 = 2 };
        server.Repos["org/model"] = Repo();
        using var cache = TestPaths.NewTempDir();
        using var client = Client(server, cache);

        var path = await client.DownloadFileAsync("org/model", "config.json");

        Assert.Equal(server.Repos["org/model"].Files["config.json"], File.ReadAllBytes(path));
        Assert.Equal(3, server.Requests.Count(r => r.Method == "HEAD"));
    }

    [Fact]
    public async Task RetriesAreBoundedAndThePartialFileIsKeptForLater()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/model"] = Repo();
        var bytes = server.Repos["org/model"].Files["weights.safetensors"];
        var sha = FakeHubServer.Sha256(bytes);
        server.DropCdn(sha, afterBytes: 100_000, times: 100); // every attempt drops after 100k more bytes
        using var cache = TestPaths.NewTempDir();
        using var client = Client(server, cache);

        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync("org/model", "weights.safetensors"));
        Assert.Equal(HubErrorKind.Network, e.Kind);
        Assert.Contains("run again to resume", e.Message);
        Assert.Equal(4, server.Requests.Count(r => r.Method == "GET" && r.Path == $"/cdn/{sha}")); // 1 + MaxRetries(3)
        var partial = Assert.Single(Directory.GetFiles(cache.Path, "*.incomplete", SearchOption.AllDirectories));
        Assert.True(new FileInfo(partial).Length > 0);

        // A later run resumes from the kept bytes.
        server.DropCdn(sha, 0, times: 0);
        var path = await client.DownloadFileAsync("org/model", "weights.safetensors");
        Assert.Equal(bytes, File.ReadAllBytes(path));
        Assert.StartsWith("bytes=", server.Requests.Last(r => r.Path == $"/cdn/{sha}").Header("Range"));
    }

    [Fact]
    public async Task TwoClientsDownloadingTheSameFileAgree()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/model"] = Repo();
        server.Repos["org/model"].Files["weights.safetensors"] = Bytes(6_000_000, 5);
        using var cache = TestPaths.NewTempDir();
        using var a = Client(server, cache);
        using var b = Client(server, cache);

        var paths = await Task.WhenAll(
            a.DownloadFileAsync("org/model", "weights.safetensors"), b.DownloadFileAsync("org/model", "weights.safetensors"));

        Assert.Equal(paths[0], paths[1]);
        Assert.Equal(server.Repos["org/model"].Files["weights.safetensors"], File.ReadAllBytes(paths[0]));
        Assert.Empty(Directory.GetFiles(cache.Path, "*.incomplete", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task ASecondDownloaderWaitsForTheLockAndUsesTheFinishedBlob()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/model"] = Repo();
        var bytes = server.Repos["org/model"].Files["weights.safetensors"];
        var sha = FakeHubServer.Sha256(bytes);
        using var cache = TestPaths.NewTempDir();
        var blob = Path.Combine(cache.Path, "models--org--model", "blobs", sha);
        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        var waiting = new TaskCompletionSource();
        using var client = Client(server, cache, log: null);
        using var logged = new HubClient(client.Options, m => { if (m.Contains("waiting")) waiting.TrySetResult(); });

        Task<string> download;
        using (new FileStream(blob + ".incomplete", FileMode.CreateNew, FileAccess.Write, FileShare.None))
        {
            download = logged.DownloadFileAsync("org/model", "weights.safetensors");
            await waiting.Task.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.False(download.IsCompleted);
            File.WriteAllBytes(blob, bytes); // "the other downloader" finishes
        }
        File.Delete(blob + ".incomplete");
        var path = await download.WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal(bytes, File.ReadAllBytes(path));
        Assert.DoesNotContain(server.Requests, r => r.Path.StartsWith("/cdn/") && r.Method == "GET");
    }

    [Fact]
    public async Task WrongChecksumIsRejectedAndThePartialFileRemoved()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/model"] = Repo();
        var bytes = server.Repos["org/model"].Files["weights.safetensors"];
        var sha = FakeHubServer.Sha256(bytes);
        var bad = (byte[])bytes.Clone();
        bad[12345] ^= 0xFF;
        server.CorruptCdn[sha] = bad;
        using var cache = TestPaths.NewTempDir();
        using var client = Client(server, cache);

        var e = await Assert.ThrowsAsync<HubException>(() => client.DownloadFileAsync("org/model", "weights.safetensors"));

        Assert.Equal(HubErrorKind.ChecksumMismatch, e.Kind);
        Assert.Contains("sha256", e.Message);
        Assert.Contains(sha, e.Message);
        Assert.Contains("removed", e.Message);
        var repoDir = Path.Combine(cache.Path, "models--org--model");
        Assert.Empty(Directory.GetFiles(repoDir, "*.incomplete", SearchOption.AllDirectories));
        Assert.False(File.Exists(Path.Combine(repoDir, "blobs", sha)));
        Assert.False(File.Exists(Path.Combine(repoDir, "snapshots", Commit, "weights.safetensors")));

        server.CorruptCdn.Clear();
        Assert.Equal(bytes, File.ReadAllBytes(await client.DownloadFileAsync("org/model", "weights.safetensors")));
    }

    [Fact]
    public async Task OfflineModeUsesTheCacheAndSaysSoWhenMissing()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/model"] = Repo();
        using var cache = TestPaths.NewTempDir();
        string online;
        using (var client = Client(server, cache))
            online = await client.DownloadFileAsync("org/model", "config.json");

        var before = server.Requests.Count;
        using var offline = Client(server, cache, offline: true);
        Assert.Equal(online, await offline.DownloadFileAsync("org/model", "config.json"));
        Assert.Equal(online, await offline.DownloadFileAsync("org/model", "config.json", Commit));
        Assert.Equal(before, server.Requests.Count); // no network at all

        var e = await Assert.ThrowsAsync<HubException>(() => offline.DownloadFileAsync("org/model", "weights.safetensors"));
        Assert.Equal(HubErrorKind.OfflineNotCached, e.Kind);
        Assert.Contains("offline", e.Message);
        Assert.Contains("weights.safetensors", e.Message);
    }

    [Fact]
    public async Task UnreachableHubFallsBackToTheCache()
    {
        using var cache = TestPaths.NewTempDir();
        string endpoint, online;
        await using (var server = new FakeHubServer())
        {
            server.Repos["org/model"] = Repo();
            endpoint = server.Endpoint;
            using var client = Client(server, cache);
            online = await client.DownloadFileAsync("org/model", "config.json");
        }
        var log = new List<string>();
        using var down = new HubClient(new HubOptions
        {
            Endpoint = endpoint, CacheDir = cache.Path, MaxRetries = 1, RetryDelay = TimeSpan.Zero, Timeout = TimeSpan.FromSeconds(5),
        }, m => log.Add(m));
        Assert.Equal(online, await down.DownloadFileAsync("org/model", "config.json"));
        Assert.Contains(log, l => l.Contains("unreachable"));
        var e = await Assert.ThrowsAsync<HubException>(() => down.DownloadFileAsync("org/model", "other.json"));
        Assert.Equal(HubErrorKind.Network, e.Kind);
        Assert.Contains("HF_HUB_OFFLINE", e.Message);
    }

    [Fact]
    public async Task CancellationStopsTheDownloadAndKeepsTheResumableFile()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/model"] = Repo();
        server.Repos["org/model"].Files["weights.safetensors"] = Bytes(8_000_000, 3);
        using var cache = TestPaths.NewTempDir();
        using var client = Client(server, cache);
        using var cts = new CancellationTokenSource();
        var progress = new CancelOnFirst(cts);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            () => client.DownloadFileAsync("org/model", "weights.safetensors", "main", progress, cts.Token));
        Assert.False(File.Exists(Path.Combine(cache.Path, "models--org--model", "snapshots", Commit, "weights.safetensors")));
        var partial = Assert.Single(Directory.GetFiles(cache.Path, "*.incomplete", SearchOption.AllDirectories));
        Assert.InRange(new FileInfo(partial).Length, 1, 8_000_000 - 1);

        // Run again: resumes from the kept bytes and completes.
        var path = await client.DownloadFileAsync("org/model", "weights.safetensors");
        Assert.Equal(server.Repos["org/model"].Files["weights.safetensors"], File.ReadAllBytes(path));
        Assert.StartsWith("bytes=", server.Requests.Last(r => r.Path.StartsWith("/cdn/")).Header("Range"));
    }

    sealed class CancelOnFirst(CancellationTokenSource cts) : IProgress<DownloadProgress>
    {
        public void Report(DownloadProgress value) => cts.Cancel();
    }

    [Fact]
    public async Task TheTokenNeverLeaksIntoMessagesLogsProgressOrFiles()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/gated"] = Repo(gated: Secret);
        server.CdnBase = $"http://localhost:{server.Port}";
        var sha = FakeHubServer.Sha256(server.Repos["org/gated"].Files["weights.safetensors"]);
        server.DropCdn(sha, 200_000, times: 1);
        using var cache = TestPaths.NewTempDir();
        var log = new List<string>();
        var texts = new List<string>();
        var progress = new ListProgress<DownloadProgress>();
        using var client = Client(server, cache, token: Secret, log: log);
        texts.Add(client.Options.ToString());
        texts.Add(new HubOptions { Token = Secret }.ToString());

        await client.DownloadFileAsync("org/gated", "weights.safetensors", "main", progress);
        await client.DownloadFileAsync("org/gated", "config.json", "main", progress);
        foreach (var call in new Func<Task>[]
        {
            () => client.DownloadFileAsync("org/gated", "nope.bin"),
            () => client.DownloadFileAsync("org/gated", "config.json", "v9"),
            () => client.DownloadPipelineAsync("org/gated"),
            () => client.DownloadFileAsync("org/absent", "config.json"),
        })
        {
            var e = await Assert.ThrowsAsync<HubException>(call);
            texts.Add(e.ToString());
        }
        using (var wrong = Client(server, cache, token: Secret + "x", log: log))
            texts.Add((await Assert.ThrowsAsync<HubException>(() => wrong.DownloadFileAsync("org/gated", "config.json"))).ToString());

        texts.AddRange(log);
        texts.AddRange(progress.Items.Select(p => p.ToString()));
        Assert.NotEmpty(log);
        Assert.All(texts, t => Assert.DoesNotContain(Secret, t));
        var secretBytes = Encoding.UTF8.GetBytes(Secret);
        foreach (var f in Directory.EnumerateFiles(cache.Path, "*", SearchOption.AllDirectories))
        {
            Assert.DoesNotContain(Secret, f);
            Assert.True(File.ReadAllBytes(f).AsSpan().IndexOf(secretBytes) < 0, $"token found in {f}");
        }
    }

    [Fact]
    public async Task Throughput64MBOnLoopback()
    {
        await using var server = new FakeHubServer();
        var repo = new FakeRepo { Commit = Commit };
        var bytes = Bytes(64 << 20, 7);
        repo.Files["big.safetensors"] = bytes;
        repo.Lfs.Add("big.safetensors");
        server.Repos["org/big"] = repo;
        using var cache = TestPaths.NewTempDir();
        using var client = Client(server, cache);
        var progress = new ListProgress<DownloadProgress>();
        _ = FakeHubServer.Sha256(bytes); // the server's own hashing stays out of the timing
        var clock = System.Diagnostics.Stopwatch.StartNew();

        var path = await client.DownloadFileAsync("org/big", "big.safetensors", "main", progress);

        clock.Stop();
        using (var f = File.OpenRead(path)) Assert.Equal(bytes.LongLength, f.Length); // through the symlink
        Assert.Equal(FakeHubServer.Sha256(bytes), FakeHubServer.Sha256(File.ReadAllBytes(path)));
        var last = progress.Items[^1];
        Assert.Equal(bytes.LongLength, last.BytesDone);
        Assert.True(last.BytesPerSecond > 0);
        output.WriteLine($"64 MiB over loopback: {clock.Elapsed.TotalSeconds:F2} s end to end incl. sha256 " +
            $"({bytes.Length / clock.Elapsed.TotalSeconds / (1 << 20):F0} MiB/s); DownloadProgress.BytesPerSecond (GET body + inline sha256 + fsync) {last.BytesPerSecond / (1 << 20):F0} MiB/s");
    }
}
