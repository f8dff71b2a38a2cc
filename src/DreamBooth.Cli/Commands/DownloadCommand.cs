using System.CommandLine;
using System.Globalization;
using DreamBooth.Loading.Hub;
using DreamBooth.Training;

namespace DreamBooth.Cli.Commands;

/// <summary><c>dreambooth download</c>: fetches a diffusers pipeline from the Hugging Face Hub into the shared cache.</summary>
public static class DownloadCommand
{
    /// <summary>A progress printer for hub downloads: one bar per file on stderr.</summary>
    public static IProgress<DownloadProgress> ProgressPrinter()
    {
        var bars = new Dictionary<string, ConsoleProgressBar>(StringComparer.Ordinal);
        var gate = new object();
        return new InlineProgress<DownloadProgress>(p =>
        {
            lock (gate)
            {
                if (!bars.TryGetValue(p.File, out var bar))
                {
                    bar = ConsoleProgressBar.ForStderr(p.File);
                    bars[p.File] = bar;
                }
                var total = p.TotalBytes ?? Math.Max(p.BytesDone, 1);
                bar.Update(p.BytesDone, total, string.Create(CultureInfo.InvariantCulture, $"{p.BytesPerSecond / 1e6:F1} MB/s"));
            }
        });
    }

    /// <summary>Hub options from the command line; the token is used, never printed.</summary>
    public static HubOptions BuildHubOptions(string? token, bool offline, string? cacheDir, string? endpoint)
    {
        var o = new HubOptions();
        if (token is not null) o = o with { Token = token };
        if (offline) o = o with { Offline = true };
        if (cacheDir is not null) o = o with { CacheDir = Path.GetFullPath(cacheDir) };
        if (endpoint is not null) o = o with { Endpoint = endpoint.TrimEnd('/') };
        o.Validate();
        return o;
    }

    /// <summary>Parses <c>--variant</c>: none or fp16.</summary>
    public static WeightVariant ParseVariant(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        null or "" or "none" or "fp32" => WeightVariant.None,
        "fp16" => WeightVariant.Fp16,
        _ => throw new CliException($"--variant '{text}': use fp16 (or leave it out for the default weights)"),
    };

    public static Command Create()
    {
        var repo = new Argument<string>("repo-id") { Description = "Hub repository, e.g. runwayml/stable-diffusion-v1-5." };
        var revision = new Option<string>("--revision") { Description = "Branch, tag or commit.", DefaultValueFactory = _ => "main" };
        var variant = new Option<string?>("--variant") { Description = "Weight variant: fp16 (falls back to the default weights per component)." };
        var token = new Option<string?>("--token") { Description = "Access token for gated/private repositories (default: $HF_TOKEN or the huggingface-cli token file). Never printed." };
        var offline = new Option<bool>("--offline") { Description = "Use only the local cache (also $HF_HUB_OFFLINE=1)." };
        var cacheDir = new Option<string?>("--cache-dir") { Description = "Cache folder (default: $HF_HUB_CACHE or ~/.cache/huggingface/hub)." };
        var endpoint = new Option<string?>("--endpoint") { Description = "Hub base URL (default: $HF_ENDPOINT or https://huggingface.co)." };
        var safety = new Option<bool>("--include-safety-checker") { Description = "Also fetch safety_checker/ and feature_extractor/." };
        var cmd = new Command("download", "Download a Stable Diffusion pipeline from the Hugging Face Hub (resumable, verified) and print its snapshot folder.")
        {
            repo, revision, variant, token, offline, cacheDir, endpoint, safety,
        };
        cmd.SetAction(pr =>
        {
            var options = BuildHubOptions(pr.GetValue(token), pr.GetValue(offline), pr.GetValue(cacheDir), pr.GetValue(endpoint));
            var v = ParseVariant(pr.GetValue(variant));
            using var client = new HubClient(options, line => Cli.Err.WriteLine(line));
            var folder = client.DownloadPipelineAsync(pr.GetValue(repo)!, pr.GetValue(revision)!, v, pr.GetValue(safety), ProgressPrinter(), Cli.Cancellation)
                .GetAwaiter().GetResult();
            Cli.Out.WriteLine(folder);
            return 0;
        });
        return cmd;
    }
}
