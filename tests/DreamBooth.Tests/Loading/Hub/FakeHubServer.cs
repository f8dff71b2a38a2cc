using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace DreamBooth.Tests.Loading.Hub;

/// <summary>One request as the fake hub saw it.</summary>
public sealed record SeenRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers)
{
    public string? Header(string name) => Headers.TryGetValue(name.ToLowerInvariant(), out var v) ? v : null;
}

/// <summary>A repository served by <see cref="FakeHubServer"/>.</summary>
public sealed class FakeRepo
{
    public required string Commit { get; init; }
    public Dictionary<string, byte[]> Files { get; } = new(StringComparer.Ordinal);
    /// <summary>Files served as LFS: 302 from /resolve/ to /cdn/{sha256} with X-Linked-Etag / X-Linked-Size.</summary>
    public HashSet<string> Lfs { get; } = new(StringComparer.Ordinal);
    /// <summary>When set, the repository is gated: only "Bearer {GatedToken}" may read it.</summary>
    public string? GatedToken { get; init; }
}

/// <summary>
/// A small HTTP/1.1 server on 127.0.0.1 (random free port) that behaves like the hub's resolve endpoint, its CDN and
/// its /api/models listing. One request per connection (Connection: close). Bounded: at most 2,000 connections,
/// 16 KiB of request headers, and it stops itself after 2 minutes even if a test forgets to dispose it.
/// </summary>
public sealed class FakeHubServer : IAsyncDisposable
{
    readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    readonly CancellationTokenSource _stop = new(TimeSpan.FromMinutes(2));
    readonly Task _loop;
    readonly ConcurrentDictionary<string, (int Times, long AfterBytes)> _drops = new();
    int _connections;

    public FakeHubServer()
    {
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _loop = Task.Run(AcceptLoop);
    }

    public int Port { get; }
    public string Endpoint => $"http://127.0.0.1:{Port}";
    /// <summary>Base of CDN redirects. "localhost" makes them a different host than the endpoint (same loopback server).</summary>
    public string CdnBase { get; set; } = "";
    public Dictionary<string, FakeRepo> Repos { get; } = new(StringComparer.Ordinal);
    public ConcurrentQueue<SeenRequest> Requests { get; } = new();
    /// <summary>sha256 → bytes to serve from /cdn/ instead of the real ones (simulates corruption).</summary>
    public ConcurrentDictionary<string, byte[]> CorruptCdn { get; } = new();
    /// <summary>The CDN answers every request with the whole file (200), as a server without Range support does.</summary>
    public bool IgnoreRange { get; set; }
    /// <summary>How many of the next /resolve/ requests get "503 Service Unavailable".</summary>
    public int Fail503 { get => _fail503; set => _fail503 = value; }
    int _fail503;

    /// <summary>The next <paramref name="times"/> GETs of /cdn/{sha} send only <paramref name="afterBytes"/> bytes, then drop the connection.</summary>
    public void DropCdn(string sha, long afterBytes, int times = 1) => _drops[sha] = (times, afterBytes);

    static readonly System.Runtime.CompilerServices.ConditionalWeakTable<byte[], string> ShaCache = new();
    /// <summary>sha256 hex of the bytes, memoised per array (the server hashes on every request).</summary>
    public static string Sha256(byte[] b) => ShaCache.GetValue(b, x => Convert.ToHexStringLower(SHA256.HashData(x)));
    public static string GitSha1(byte[] b) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {b.Length}\0"), .. b]));

    async Task AcceptLoop()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
            catch (OperationCanceledException) { break; }
            catch (SocketException) { break; }
            catch (ObjectDisposedException) { break; }
            if (Interlocked.Increment(ref _connections) > 2000) { client.Dispose(); continue; }
            _ = Task.Run(() => Serve(client));
        }
    }

    async Task Serve(TcpClient client)
    {
        using (client)
        {
            try
            {
                var stream = client.GetStream();
                var req = await ReadRequest(stream);
                if (req is null) return;
                Requests.Enqueue(req);
                await Route(stream, req);
                await stream.FlushAsync(_stop.Token);
            }
            catch (IOException) { }
            catch (SocketException) { }
            catch (OperationCanceledException) { }
            catch (ObjectDisposedException) { }
        }
    }

    async Task<SeenRequest?> ReadRequest(NetworkStream s)
    {
        var buf = new byte[16 * 1024];
        var n = 0;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        while (true)
        {
            if (n == buf.Length) return null;
            var r = await s.ReadAsync(buf.AsMemory(n), timeout.Token);
            if (r == 0) return null;
            n += r;
            var text = Encoding.ASCII.GetString(buf, 0, n);
            var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (end < 0) continue;
            var lines = text[..end].Split("\r\n");
            var first = lines[0].Split(' ');
            if (first.Length < 3) return null;
            var headers = new Dictionary<string, string>();
            foreach (var l in lines.Skip(1))
            {
                var c = l.IndexOf(':');
                if (c > 0) headers[l[..c].Trim().ToLowerInvariant()] = l[(c + 1)..].Trim();
            }
            return new SeenRequest(first[0], Uri.UnescapeDataString(first[1]), headers);
        }
    }

    static async Task Write(NetworkStream s, int code, string reason, IEnumerable<(string, string)> headers, byte[]? body, bool head,
        long bodyOffset = 0, long? bodyCount = null, long? sendOnly = null)
    {
        var sb = new StringBuilder($"HTTP/1.1 {code} {reason}\r\n");
        var count = bodyCount ?? (body?.LongLength ?? 0) - bodyOffset;
        foreach (var (k, v) in headers) sb.Append($"{k}: {v}\r\n");
        sb.Append($"Content-Length: {count}\r\nConnection: close\r\n\r\n");
        await s.WriteAsync(Encoding.ASCII.GetBytes(sb.ToString()));
        if (head || body is null) return;
        var toSend = Math.Min(count, sendOnly ?? count);
        await s.WriteAsync(body.AsMemory((int)bodyOffset, (int)toSend));
    }

    static Task Error(NetworkStream s, int code, string reason, string errorCode, string message, bool head) =>
        Write(s, code, reason, [("X-Error-Code", errorCode), ("X-Error-Message", message), ("Content-Type", "text/plain")],
            Encoding.UTF8.GetBytes(message), head);

    async Task Route(NetworkStream s, SeenRequest req)
    {
        var head = req.Method == "HEAD";
        var path = req.Path;
        if (path.StartsWith("/cdn/", StringComparison.Ordinal))
        {
            await ServeCdn(s, req, path["/cdn/".Length..], head);
            return;
        }
        if (path.StartsWith("/api/models/", StringComparison.Ordinal))
        {
            var rest = path["/api/models/".Length..];
            var at = rest.IndexOf("/revision/", StringComparison.Ordinal);
            if (at < 0) { await Error(s, 404, "Not Found", "RepoNotFound", "no such route", head); return; }
            var (repoId, rev) = (rest[..at], rest[(at + "/revision/".Length)..]);
            if (!Repos.TryGetValue(repoId, out var repo)) { await Error(s, 404, "Not Found", "RepoNotFound", "Repository not found", head); return; }
            if (!Authorized(repo, req)) { await Error(s, 401, "Unauthorized", "GatedRepo", "Access to this repo is restricted", head); return; }
            if (rev != "main" && rev != repo.Commit) { await Error(s, 404, "Not Found", "RevisionNotFound", "Invalid rev id", head); return; }
            var json = JsonSerializer.SerializeToUtf8Bytes(new
            {
                id = repoId,
                sha = repo.Commit,
                siblings = repo.Files.Keys.Select(k => new { rfilename = k }).ToArray(),
            });
            await Write(s, 200, "OK", [("Content-Type", "application/json")], json, head);
            return;
        }
        var resolve = path.IndexOf("/resolve/", StringComparison.Ordinal);
        if (resolve > 0)
        {
            if (Interlocked.Decrement(ref _fail503) >= 0) { await Write(s, 503, "Service Unavailable", [], [], head); return; }
            var repoId = path[1..resolve];
            var rest = path[(resolve + "/resolve/".Length)..];
            var slash = rest.IndexOf('/');
            var (rev, file) = (rest[..slash], rest[(slash + 1)..]);
            if (!Repos.TryGetValue(repoId, out var repo)) { await Error(s, 404, "Not Found", "RepoNotFound", "Repository not found", head); return; }
            if (!Authorized(repo, req)) { await Error(s, 401, "Unauthorized", "GatedRepo", "Access to this repo is restricted", head); return; }
            if (rev != "main" && rev != repo.Commit) { await Error(s, 404, "Not Found", "RevisionNotFound", "Invalid rev id", head); return; }
            if (!repo.Files.TryGetValue(file, out var bytes)) { await Error(s, 404, "Not Found", "EntryNotFound", "Entry not found", head); return; }
            if (repo.Lfs.Contains(file))
            {
                var sha = Sha256(bytes);
                var location = $"{(CdnBase.Length > 0 ? CdnBase : "")}/cdn/{sha}";
                await Write(s, 302, "Found",
                    [("Location", location), ("X-Repo-Commit", repo.Commit), ("X-Linked-Etag", $"\"{sha}\""),
                     ("X-Linked-Size", bytes.Length.ToString()), ("ETag", $"\"{GitSha1(bytes)}\"")], [], head);
                return;
            }
            await Write(s, 200, "OK", [("X-Repo-Commit", repo.Commit), ("ETag", $"\"{GitSha1(bytes)}\"")], bytes, head);
            return;
        }
        await Error(s, 404, "Not Found", "RepoNotFound", "no such route", head);
    }

    async Task ServeCdn(NetworkStream s, SeenRequest req, string sha, bool head)
    {
        var bytes = Repos.Values.SelectMany(r => r.Files.Values).FirstOrDefault(b => Sha256(b) == sha);
        if (bytes is null) { await Write(s, 404, "Not Found", [], [], head); return; }
        if (CorruptCdn.TryGetValue(sha, out var bad)) bytes = bad;
        long from = 0;
        var range = req.Header("Range");
        if (range is not null && !IgnoreRange && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
            from = long.Parse(range["bytes=".Length..^1]);
        long? sendOnly = null;
        if (!head && _drops.TryGetValue(sha, out var drop) && drop.Times > 0)
        {
            _drops[sha] = (drop.Times - 1, drop.AfterBytes);
            sendOnly = drop.AfterBytes;
        }
        if (from > 0)
        {
            if (from >= bytes.Length)
            {
                await Write(s, 416, "Range Not Satisfiable", [("Content-Range", $"bytes */{bytes.Length}")], [], head);
                return;
            }
            await Write(s, 206, "Partial Content", [("Content-Range", $"bytes {from}-{bytes.Length - 1}/{bytes.Length}"), ("ETag", $"\"{sha}\"")],
                bytes, head, from, bytes.Length - from, sendOnly);
            return;
        }
        await Write(s, 200, "OK", [("ETag", $"\"{sha}\""), ("Accept-Ranges", "bytes")], bytes, head, sendOnly: sendOnly);
    }

    static bool Authorized(FakeRepo repo, SeenRequest req) =>
        repo.GatedToken is null || req.Header("Authorization") == $"Bearer {repo.GatedToken}";

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        try { await _loop.WaitAsync(TimeSpan.FromSeconds(5)); } catch (TimeoutException) { } catch (OperationCanceledException) { }
        _stop.Dispose();
    }
}
