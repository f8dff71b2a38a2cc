using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace DreamBooth.Loading.Hub;

/// <summary>
/// Downloads files and Stable Diffusion pipelines from the Hugging Face Hub into the shared Hugging Face cache,
/// following huggingface_hub's <c>hf_hub_download</c> / <c>snapshot_download</c>: a HEAD on
/// <c>{endpoint}/{repo}/resolve/{revision}/{file}</c> gives the commit (<c>X-Repo-Commit</c>), the blob id
/// (<c>X-Linked-Etag</c> / <c>ETag</c>, sha256 for LFS files) and size; the body goes to <c>blobs/{etag}.incomplete</c>,
/// resumes with an HTTP Range request after a dropped connection, is verified, then renamed atomically.
/// The token is sent only to the endpoint's own host (never to a CDN it redirects to) and is never logged or stored.
/// </summary>
public sealed partial class HubClient : IDisposable
{
    const int MaxRedirects = 10;
    static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    readonly HubOptions _options;
    readonly string? _token;
    readonly Uri _endpoint;
    readonly HttpClient _http;
    readonly Action<string>? _log;

    /// <summary>Creates a client. <paramref name="log"/> receives one line per notable event (never the token).</summary>
    public HubClient(HubOptions? options = null, Action<string>? log = null)
    {
        _options = options ?? new HubOptions();
        _options.Validate();
        _token = _options.UseStoredToken ? HubToken.Resolve(_options.Token) : (string.IsNullOrWhiteSpace(_options.Token) ? null : _options.Token.Trim());
        _endpoint = new Uri(_options.Endpoint.TrimEnd('/') + "/");
        _log = log;
        Cache = new HubCache(_options.CacheDir);
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false, // redirects are followed by hand so the token never leaves the endpoint's host
            AutomaticDecompression = DecompressionMethods.None,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
            ConnectTimeout = _options.Timeout,
        };
        _http = new HttpClient(handler) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("DreamBooth.NET", "1.0"));
    }

    /// <summary>The local cache this client writes to.</summary>
    public HubCache Cache { get; }

    /// <summary>The options in force (the token shows as *** when printed).</summary>
    public HubOptions Options => _options;

    /// <summary>Whether a token will be sent (from the option, HF_TOKEN or the token file).</summary>
    public bool HasToken => _token is not null;

    /// <summary>
    /// Downloads one file of a model repository (or finds it in the cache) and returns its local path
    /// <c>{cache}/models--org--name/snapshots/{commit}/{filename}</c>, like huggingface_hub's <c>hf_hub_download</c>.
    /// </summary>
    public async Task<string> DownloadFileAsync(string repoId, string filename, string revision = "main",
        IProgress<DownloadProgress>? progress = null, CancellationToken ct = default)
    {
        ValidateRepoId(repoId);
        ValidateFilename(repoId, filename);
        ValidateRevision(repoId, revision);

        // A pinned commit already in the cache needs no network at all.
        if (HubCache.IsCommitHash(revision) && Cache.TryGetCachedFile(repoId, filename, revision) is { } pinned)
            return pinned;
        if (_options.Offline)
            return Cache.TryGetCachedFile(repoId, filename, revision) ?? throw OfflineNotCached(repoId, filename, revision, null);

        FileMetadata meta;
        try
        {
            meta = await GetFileMetadataAsync(repoId, filename, revision, ct).ConfigureAwait(false);
        }
        catch (HubException e) when (e.Kind == HubErrorKind.Network)
        {
            if (Cache.TryGetCachedFile(repoId, filename, revision) is { } cached)
            {
                Log($"{repoId}: hub unreachable ({e.InnerException?.GetType().Name ?? "network error"}); using the cached {filename}");
                return cached;
            }
            throw;
        }

        Cache.WriteRef(repoId, revision, meta.Commit);
        var pointer = Cache.SnapshotPath(repoId, meta.Commit, filename);
        if (File.Exists(pointer)) return pointer;

        var blob = Cache.BlobPath(repoId, meta.Etag);
        if (!File.Exists(blob))
            await DownloadBlobAsync(repoId, filename, revision, meta, blob, progress, ct).ConfigureAwait(false);
        else
            progress?.Report(new DownloadProgress(filename, new FileInfo(blob).Length, meta.Size, 0));
        Cache.LinkSnapshot(blob, pointer);
        return pointer;
    }

    /// <summary>The commit hash and file list of a revision, from <c>{endpoint}/api/models/{repo}/revision/{revision}</c>.</summary>
    public async Task<RepoInfo> GetRepoInfoAsync(string repoId, string revision = "main", CancellationToken ct = default)
    {
        ValidateRepoId(repoId);
        ValidateRevision(repoId, revision);
        if (_options.Offline)
            throw OfflineNotCached(repoId, null, revision, null);
        var url = new Uri(_endpoint, $"api/models/{repoId}/revision/{Uri.EscapeDataString(revision)}");
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(_options.Timeout);
                var (resp, _, _) = await SendAsync(HttpMethod.Get, url, null, timeout.Token).ConfigureAwait(false);
                using (resp)
                {
                    if (IsRetryable(resp.StatusCode) && attempt < _options.MaxRetries)
                    {
                        await BackoffAsync(repoId, "the file list", attempt, $"HTTP {(int)resp.StatusCode}", ct).ConfigureAwait(false);
                        continue;
                    }
                    if (!resp.IsSuccessStatusCode) throw HttpError(resp, repoId, null, revision);
                    var json = await resp.Content.ReadAsStringAsync(timeout.Token).ConfigureAwait(false);
                    return ParseRepoInfo(repoId, revision, json);
                }
            }
            catch (Exception e) when (IsTransient(e, ct))
            {
                if (attempt >= _options.MaxRetries) throw NetworkFailure(repoId, null, revision, e, attempt + 1);
                await BackoffAsync(repoId, "the file list", attempt, e.GetType().Name, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// Downloads what a Stable Diffusion pipeline needs (diffusers' <c>DiffusionPipeline.download</c>): <c>model_index.json</c>,
    /// then for each component its config and one weight file (the <paramref name="variant"/> safetensors when given,
    /// else plain safetensors, else .bin) and the tokenizer files; safety checker and feature extractor only when asked.
    /// Returns the snapshot folder. Offline (or with the hub unreachable) it returns the cached snapshot when complete.
    /// </summary>
    public async Task<string> DownloadPipelineAsync(string repoId, string revision = "main", WeightVariant variant = WeightVariant.None,
        bool includeSafetyChecker = false, IProgress<DownloadProgress>? progress = null, CancellationToken ct = default)
    {
        ValidateRepoId(repoId);
        ValidateRevision(repoId, revision);
        if (_options.Offline)
            return CachedPipelineOrThrow(repoId, revision, variant, includeSafetyChecker, null);

        RepoInfo info;
        try
        {
            info = await GetRepoInfoAsync(repoId, revision, ct).ConfigureAwait(false);
        }
        catch (HubException e) when (e.Kind == HubErrorKind.Network)
        {
            Log($"{repoId}: hub unreachable; looking for a complete cached snapshot of {revision}");
            return CachedPipelineOrThrow(repoId, revision, variant, includeSafetyChecker, e);
        }

        // Like snapshot_download: every file is fetched at the resolved commit, so the snapshot is consistent.
        var indexPath = await DownloadFileAsync(repoId, PipelineFiles.ModelIndex, info.Commit, progress, ct).ConfigureAwait(false);
        var modelIndex = await File.ReadAllTextAsync(indexPath, ct).ConfigureAwait(false);
        IReadOnlyList<string> files;
        try
        {
            files = PipelineFiles.Select(modelIndex, info.Files, variant, includeSafetyChecker);
        }
        catch (PipelineFilesException e)
        {
            throw new HubException(HubErrorKind.IncompletePipeline, repoId, e.FileName, revision,
                $"{repoId}@{revision} is not a usable diffusers pipeline: {e.Message}", e);
        }
        foreach (var f in files)
        {
            if (f == PipelineFiles.ModelIndex) continue;
            await DownloadFileAsync(repoId, f, info.Commit, progress, ct).ConfigureAwait(false);
        }
        Cache.WriteRef(repoId, revision, info.Commit);
        Log($"{repoId}@{revision}: pipeline ready ({files.Count} files, commit {info.Commit})");
        return Cache.SnapshotDir(repoId, info.Commit);
    }

    string CachedPipelineOrThrow(string repoId, string revision, WeightVariant variant, bool includeSafetyChecker, Exception? inner)
    {
        var commit = Cache.ResolveRevision(repoId, revision);
        var dir = commit is null ? null : Cache.SnapshotDir(repoId, commit);
        if (dir is null || !File.Exists(Path.Combine(dir, PipelineFiles.ModelIndex)))
            throw OfflineNotCached(repoId, null, revision, inner);
        var present = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(dir, p).Replace(Path.DirectorySeparatorChar, '/')).ToList();
        try
        {
            PipelineFiles.Select(File.ReadAllText(Path.Combine(dir, PipelineFiles.ModelIndex)), present, variant, includeSafetyChecker);
        }
        catch (PipelineFilesException e)
        {
            throw new HubException(HubErrorKind.OfflineNotCached, repoId, e.FileName, revision,
                $"{repoId}@{revision}: the cached snapshot {dir} is incomplete ({e.Message}) and the hub cannot be used " +
                $"({(_options.Offline ? "offline mode is on: unset HF_HUB_OFFLINE / Offline" : "network unreachable")}) to finish it.", inner ?? e);
        }
        return dir;
    }

    /// <summary>What the hub says about one file before downloading it.</summary>
    sealed record FileMetadata(string Commit, string Etag, long? Size, Uri DownloadUrl);

    async Task<FileMetadata> GetFileMetadataAsync(string repoId, string filename, string revision, CancellationToken ct)
    {
        var url = ResolveUrl(repoId, filename, revision);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(_options.Timeout);
                var (resp, hops, finalUrl) = await SendAsync(HttpMethod.Head, url, null, timeout.Token).ConfigureAwait(false);
                if (resp.StatusCode == HttpStatusCode.MethodNotAllowed)
                {
                    resp.Dispose();
                    (resp, hops, finalUrl) = await SendAsync(HttpMethod.Get, url, null, timeout.Token).ConfigureAwait(false);
                }
                using (resp)
                {
                    if (IsRetryable(resp.StatusCode) && attempt < _options.MaxRetries)
                    {
                        await BackoffAsync(repoId, filename, attempt, $"HTTP {(int)resp.StatusCode}", ct).ConfigureAwait(false);
                        continue;
                    }
                    if (!resp.IsSuccessStatusCode) throw HttpError(resp, repoId, filename, revision);
                    return ReadMetadata(repoId, filename, revision, resp, hops, finalUrl);
                }
            }
            catch (Exception e) when (IsTransient(e, ct))
            {
                if (attempt >= _options.MaxRetries) throw NetworkFailure(repoId, filename, revision, e, attempt + 1);
                await BackoffAsync(repoId, filename, attempt, e.GetType().Name, ct).ConfigureAwait(false);
            }
        }
    }

    static FileMetadata ReadMetadata(string repoId, string filename, string revision, HttpResponseMessage final,
        List<Dictionary<string, string>> hops, Uri finalUrl)
    {
        // The resolve response (often a redirect to a CDN) carries the hub's headers; later hops are the CDN's.
        string? First(string name) =>
            hops.Select(h => h.TryGetValue(name, out var v) ? v : null).FirstOrDefault(v => v is not null) ?? Header(final, name);
        var commit = First("X-Repo-Commit");
        var etag = NormalizeEtag(First("X-Linked-Etag") ?? First("ETag"));
        var sizeText = First("X-Linked-Size");
        long? size = long.TryParse(sizeText, NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s : final.Content.Headers.ContentLength;
        if (commit is null || !HubCache.IsSafeName(commit))
            throw new HubException(HubErrorKind.BadResponse, repoId, filename, revision,
                $"{repoId}/{filename}@{revision}: the server sent no usable X-Repo-Commit header; is HubOptions.Endpoint a Hugging Face hub?");
        if (etag is null || !HubCache.IsSafeName(etag))
            throw new HubException(HubErrorKind.BadResponse, repoId, filename, revision,
                $"{repoId}/{filename}@{revision}: the server sent no usable ETag / X-Linked-Etag header, so the file cannot be cached safely.");
        return new FileMetadata(commit, etag, size, finalUrl);
    }

    async Task DownloadBlobAsync(string repoId, string filename, string revision, FileMetadata meta, string blobPath,
        IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(blobPath)!);
        var incomplete = blobPath + ".incomplete";
        // The .incomplete file is opened exclusively: it is the lock that keeps two downloads of one blob apart
        // (huggingface_hub uses a FileLock). A second downloader waits, then finds the finished blob.
        FileStream? file = null;
        for (var waited = false; file is null; )
        {
            try
            {
                file = new FileStream(incomplete, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, useAsync: true);
            }
            catch (IOException) when (File.Exists(incomplete))
            {
                if (!waited) Log($"{repoId}/{filename}: another download of this file is running; waiting for it");
                waited = true;
                await Task.Delay(200, ct).ConfigureAwait(false);
            }
            if (File.Exists(blobPath))
            {
                if (file is not null)
                {
                    file.Dispose();
                    TryDelete(incomplete); // we held the lock: nobody else is writing it
                }
                return;
            }
        }

        var clock = Stopwatch.StartNew();
        long startBytes = -1, lastReport = -1;
        var buffer = new byte[1 << 20];
        var downloadUrl = meta.DownloadUrl;
        // LFS files (64-hex ETag = sha256) are hashed while they stream in; resumed bytes are hashed from disk first.
        using var hash = Sha256Regex().IsMatch(meta.Etag) ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
        long hashed = -1;
        using (file)
        {
            if (meta.Size is { } expected && file.Length > expected) file.SetLength(0);
            if (file.Length > 0) Log($"{repoId}/{filename}: resuming a partial download at {file.Length} bytes");
            startBytes = file.Length;
            for (var attempt = 0; ; )
            {
                if (meta.Size is { } exp && file.Length == exp) break;
                long have = file.Length;
                if (hash is not null && hashed != have) hashed = await RehashPrefixAsync(file, hash, ct).ConfigureAwait(false);
                try
                {
                    using var stall = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    stall.CancelAfter(_options.Timeout);
                    var (resp, _, _) = await SendAsync(HttpMethod.Get, downloadUrl, have > 0 ? have : null, stall.Token).ConfigureAwait(false);
                    using (resp)
                    {
                        if (resp.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable && meta.Size == have) break;
                        if (IsRetryable(resp.StatusCode)) throw new HttpRequestException($"HTTP {(int)resp.StatusCode}", null, resp.StatusCode);
                        if (!resp.IsSuccessStatusCode) throw HttpError(resp, repoId, filename, revision);
                        if (resp.StatusCode == HttpStatusCode.PartialContent)
                        {
                            if (resp.Content.Headers.ContentRange?.From is { } from && from != have)
                            {
                                file.SetLength(0); // counted as a failed attempt below, so a confused server cannot loop us
                                throw new IOException($"the server resumed at byte {from}, not {have}; restarting from 0");
                            }
                        }
                        else if (have > 0)
                        {
                            Log($"{repoId}/{filename}: server ignored the Range request; restarting from 0");
                            file.SetLength(0);
                            have = 0;
                            if (hash is not null) hashed = await RehashPrefixAsync(file, hash, ct).ConfigureAwait(false);
                        }
                        file.Seek(have, SeekOrigin.Begin);
                        await using var body = await resp.Content.ReadAsStreamAsync(stall.Token).ConfigureAwait(false);
                        while (true)
                        {
                            stall.CancelAfter(_options.Timeout);
                            var n = await body.ReadAsync(buffer, stall.Token).ConfigureAwait(false);
                            if (n == 0) break;
                            await file.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                            if (hash is not null)
                            {
                                hash.AppendData(buffer, 0, n);
                                hashed += n;
                            }
                            if (progress is not null && (lastReport < 0 || clock.ElapsedMilliseconds - lastReport >= 100))
                            {
                                lastReport = clock.ElapsedMilliseconds;
                                progress.Report(new DownloadProgress(filename, file.Length, meta.Size, Speed(file.Length - startBytes, clock)));
                            }
                        }
                    }
                    if (meta.Size is null) break;                 // no announced size: a clean end of body is the end
                    if (file.Length >= meta.Size) break;
                    throw new IOException($"the connection closed after {file.Length} of {meta.Size} bytes");
                }
                catch (Exception e) when (IsTransient(e, ct))
                {
                    await file.FlushAsync(ct).ConfigureAwait(false);
                    if (attempt >= _options.MaxRetries)
                        throw NetworkFailure(repoId, filename, revision, e, attempt + 1,
                            $" {file.Length} bytes are kept in {incomplete}; run again to resume.");
                    Log($"{repoId}/{filename}: download interrupted at {file.Length}/{meta.Size?.ToString(CultureInfo.InvariantCulture) ?? "?"} bytes ({Describe(e)}); resuming");
                    await BackoffAsync(repoId, filename, attempt, Describe(e), ct).ConfigureAwait(false);
                    attempt++;
                }
            }
            await file.FlushAsync(ct).ConfigureAwait(false);
            file.Flush(flushToDisk: true);
        }

        var length = new FileInfo(incomplete).Length;
        progress?.Report(new DownloadProgress(filename, length, meta.Size, Speed(length - startBytes, clock)));
        if (meta.Size is { } size && length != size)
        {
            TryDelete(incomplete);
            throw new HubException(HubErrorKind.SizeMismatch, repoId, filename, revision,
                $"{repoId}/{filename}@{revision}: downloaded {length} bytes but the hub announced {size}; the partial file was removed. Run the download again.");
        }
        if (hash is not null)
        {
            if (hashed != length)
                await using (var check = new FileStream(incomplete, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, useAsync: true))
                    hashed = await RehashPrefixAsync(check, hash, ct).ConfigureAwait(false);
            var actual = Convert.ToHexStringLower(hash.GetHashAndReset());
            if (!string.Equals(actual, meta.Etag, StringComparison.OrdinalIgnoreCase))
            {
                TryDelete(incomplete);
                throw new HubException(HubErrorKind.ChecksumMismatch, repoId, filename, revision,
                    $"{repoId}/{filename}@{revision}: sha256 of the downloaded file is {actual} but the hub says {meta.Etag}; " +
                    "the file was corrupted in transit (or changed on the server) and the partial file was removed. Run the download again.");
            }
        }
        File.Move(incomplete, blobPath, overwrite: true);
        Log($"{repoId}/{filename}: {length} bytes in {clock.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>Restarts the hash over the file's current bytes; returns how many were hashed.</summary>
    static async Task<long> RehashPrefixAsync(FileStream file, IncrementalHash hash, CancellationToken ct)
    {
        hash.GetHashAndReset();
        var buf = new byte[1 << 20];
        long total = 0;
        file.Seek(0, SeekOrigin.Begin);
        int n;
        while ((n = await file.ReadAsync(buf, ct).ConfigureAwait(false)) > 0)
        {
            hash.AppendData(buf, 0, n);
            total += n;
        }
        return total;
    }

    /// <summary>Sends a request, following up to 10 redirects by hand. The Authorization header goes only to the endpoint's
    /// own scheme+host+port: a redirect to another host (a CDN) gets no token, as with huggingface_hub / requests.</summary>
    async Task<(HttpResponseMessage Final, List<Dictionary<string, string>> Hops, Uri FinalUrl)> SendAsync(
        HttpMethod method, Uri url, long? rangeFrom, CancellationToken ct)
    {
        var hops = new List<Dictionary<string, string>>();
        for (var i = 0; ; i++)
        {
            using var req = new HttpRequestMessage(method, url);
            req.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            if (rangeFrom is { } from) req.Headers.Range = new RangeHeaderValue(from, null);
            if (_token is not null && SameOrigin(url, _endpoint))
                req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
            var resp = await _http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            var code = (int)resp.StatusCode;
            if (code is 301 or 302 or 303 or 307 or 308 && resp.Headers.Location is { } location)
            {
                if (i >= MaxRedirects) return (resp, hops, url);
                var next = location.IsAbsoluteUri ? location : new Uri(url, location);
                if (next.Scheme != Uri.UriSchemeHttp && next.Scheme != Uri.UriSchemeHttps)
                {
                    resp.Dispose();
                    throw new HttpRequestException($"redirect to unsupported scheme {next.Scheme}");
                }
                if (_token is not null && SameOrigin(url, _endpoint) && !SameOrigin(next, _endpoint))
                    Log($"redirected to {next.Scheme}://{next.Authority}{next.AbsolutePath}; the token is not sent there");
                var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
                foreach (var (k, v) in resp.Headers.Concat(resp.Content.Headers))
                    headers.TryAdd(k, v.FirstOrDefault() ?? "");
                hops.Add(headers);
                resp.Dispose();
                url = next;
                continue;
            }
            return (resp, hops, url);
        }
    }

    static bool SameOrigin(Uri a, Uri b) =>
        a.Scheme == b.Scheme && string.Equals(a.IdnHost, b.IdnHost, StringComparison.OrdinalIgnoreCase) && a.Port == b.Port;

    Uri ResolveUrl(string repoId, string filename, string revision) =>
        new(_endpoint, $"{repoId}/resolve/{Uri.EscapeDataString(revision)}/{string.Join('/', filename.Split('/').Select(Uri.EscapeDataString))}");

    HubException HttpError(HttpResponseMessage resp, string repoId, string? filename, string? revision)
    {
        var code = (int)resp.StatusCode;
        var errorCode = Header(resp, "X-Error-Code");
        var what = filename is null ? $"{repoId}@{revision}" : $"{repoId}/{filename}@{revision}";
        var serverSays = Header(resp, "X-Error-Message") is { } m ? $" (hub: {Scrub(m)})" : "";
        if (errorCode == "GatedRepo" || code is 401 or 403)
        {
            var tokenNote = _token is null
                ? "no token was sent"
                : "the token that was sent was refused (wrong token, or it lacks read access / the licence is not accepted yet)";
            return new HubException(HubErrorKind.Unauthorized, repoId, filename, revision,
                $"{what}: repository is gated or private: accept its licence on the hub and pass a token (--token or HF_TOKEN); " +
                $"{tokenNote}. If the repository name is misspelled the hub also answers this way.{serverSays}")
            { StatusCode = code };
        }
        if (code == 404)
        {
            var (kind, text) = errorCode switch
            {
                "RepoNotFound" => (HubErrorKind.RepositoryNotFound, $"repository '{repoId}' not found on {_endpoint.Authority}; check the name (org/name)"),
                "RevisionNotFound" => (HubErrorKind.RevisionNotFound, $"revision '{revision}' not found in {repoId}; check the branch, tag or commit"),
                "EntryNotFound" => (HubErrorKind.FileNotFound, $"file '{filename}' not found in {repoId} at revision '{revision}'; check the file name"),
                _ => (filename is null ? HubErrorKind.RepositoryNotFound : HubErrorKind.FileNotFound,
                    $"not found: repository '{repoId}', file '{filename ?? "(file list)"}' or revision '{revision}' does not exist; check all three"),
            };
            return new HubException(kind, repoId, filename, revision, $"{what}: {text}.{serverSays}") { StatusCode = code };
        }
        return new HubException(HubErrorKind.BadResponse, repoId, filename, revision,
            $"{what}: the hub answered HTTP {code} {resp.ReasonPhrase}.{serverSays}") { StatusCode = code };
    }

    HubException NetworkFailure(string repoId, string? filename, string? revision, Exception e, int attempts, string extra = "") =>
        new(HubErrorKind.Network, repoId, filename, revision,
            $"{repoId}{(filename is null ? "" : "/" + filename)}@{revision}: could not reach {_endpoint.Authority} after {attempts} attempt(s) " +
            $"({Describe(e)}).{extra} Check the network, or set HF_HUB_OFFLINE=1 to use only the cache.", e);

    HubException OfflineNotCached(string repoId, string? filename, string revision, Exception? inner) =>
        new(HubErrorKind.OfflineNotCached, repoId, filename, revision,
            $"{repoId}{(filename is null ? "" : "/" + filename)}@{revision} is not in the cache at {Cache.Root} and " +
            (_options.Offline
                ? "offline mode is on (HF_HUB_OFFLINE / HubOptions.Offline); download it once online, or unset offline mode."
                : "the hub cannot be reached; download it once with a working network."), inner);

    async Task BackoffAsync(string repoId, string what, int attempt, string reason, CancellationToken ct)
    {
        var ms = Math.Min(MaxBackoff.TotalMilliseconds, _options.RetryDelay.TotalMilliseconds * Math.Pow(2, attempt));
        Log($"{repoId}: {what}: {reason}; retry {attempt + 1}/{_options.MaxRetries} in {ms / 1000:F1} s");
        await Task.Delay(TimeSpan.FromMilliseconds(ms), ct).ConfigureAwait(false);
    }

    static bool IsTransient(Exception e, CancellationToken ct) =>
        !ct.IsCancellationRequested && e is HttpRequestException or IOException or OperationCanceledException;

    static bool IsRetryable(HttpStatusCode code) => (int)code is 429 or 500 or 502 or 503 or 504;

    string Describe(Exception e) => e switch
    {
        OperationCanceledException => $"no data for {_options.Timeout.TotalSeconds:F0} s",
        _ => Scrub(e.Message),
    };

    /// <summary>Removes the token from any text that could reach a message (defence in depth; we never put it there).</summary>
    string Scrub(string text) => _token is null ? text : text.Replace(_token, "***", StringComparison.Ordinal);

    void Log(string message) => _log?.Invoke(Scrub(message));

    static string? Header(HttpResponseMessage r, string name) =>
        r.Headers.TryGetValues(name, out var v) || r.Content.Headers.TryGetValues(name, out v) ? v.FirstOrDefault() : null;

    static string? NormalizeEtag(string? etag)
    {
        if (etag is null) return null;
        var e = etag.Trim();
        if (e.StartsWith("W/", StringComparison.Ordinal)) e = e[2..];
        return e.Trim('"');
    }

    static double Speed(long bytes, Stopwatch clock) => bytes <= 0 ? 0 : bytes / Math.Max(clock.Elapsed.TotalSeconds, 1e-6);

    static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }

    static RepoInfo ParseRepoInfo(string repoId, string revision, string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var root = doc.RootElement;
            var sha = root.TryGetProperty("sha", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null;
            if (sha is null || !HubCache.IsSafeName(sha))
                throw new HubException(HubErrorKind.BadResponse, repoId, null, revision,
                    $"{repoId}@{revision}: the hub's file list has no usable \"sha\" (commit); is HubOptions.Endpoint a Hugging Face hub?");
            var files = new List<string>();
            if (root.TryGetProperty("siblings", out var sib) && sib.ValueKind == JsonValueKind.Array)
                foreach (var e in sib.EnumerateArray())
                    if (e.TryGetProperty("rfilename", out var f) && f.GetString() is { } name) files.Add(name);
            return new RepoInfo(repoId, sha, files);
        }
        catch (JsonException e)
        {
            throw new HubException(HubErrorKind.BadResponse, repoId, null, revision,
                $"{repoId}@{revision}: the hub's file list is not valid JSON ({e.Message}).", e);
        }
    }

    static void ValidateRepoId(string repoId)
    {
        if (string.IsNullOrWhiteSpace(repoId) || !RepoIdRegex().IsMatch(repoId) || repoId.Contains("--", StringComparison.Ordinal) || repoId.Contains("..", StringComparison.Ordinal))
            throw new ArgumentException($"'{repoId}' is not a repository id; use 'org/name', e.g. runwayml/stable-diffusion-v1-5.", nameof(repoId));
    }

    static void ValidateFilename(string repoId, string filename)
    {
        if (string.IsNullOrWhiteSpace(filename) || filename.StartsWith('/') || filename.Contains('\\')
            || filename.Split('/').Any(p => p.Length == 0 || p == "." || p == ".."))
            throw new ArgumentException($"'{filename}' is not a file path inside {repoId}; use a relative path with '/' such as unet/config.json.", nameof(filename));
    }

    static void ValidateRevision(string repoId, string revision)
    {
        if (string.IsNullOrWhiteSpace(revision) || revision.Contains('\\') || revision.StartsWith('/')
            || revision.Split('/').Any(p => p.Length == 0 || p == "." || p == ".."))
            throw new ArgumentException($"'{revision}' is not a revision of {repoId}; use a branch, tag or commit hash such as main.", nameof(revision));
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")]
    private static partial Regex RepoIdRegex();

    [GeneratedRegex("^[0-9a-fA-F]{64}$")]
    private static partial Regex Sha256Regex();

    /// <summary>Releases the HTTP connections.</summary>
    public void Dispose() => _http.Dispose();
}

/// <summary>A revision of a repository: its commit hash and every file path in it.</summary>
public sealed record RepoInfo(string RepoId, string Commit, IReadOnlyList<string> Files);
