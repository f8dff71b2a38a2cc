using System.Text;
using DreamBooth.Loading.Hub;
using DreamBooth.Tests.Infrastructure;

namespace DreamBooth.Tests.Loading.Hub;

/// <summary>Whole-pipeline downloads and the file-selection rules (diffusers' variant naming).</summary>
public sealed class PipelineDownloadTests
{
    const string Commit = "fedcba9876543210fedcba9876543210fedcba98";

    const string ModelIndex = """
        {
          "_class_name": "StableDiffusionPipeline",
          "_diffusers_version": "0.21.0",
          "feature_extractor": ["transformers", "CLIPImageProcessor"],
          "requires_safety_checker": true,
          "safety_checker": ["stable_diffusion", "StableDiffusionSafetyChecker"],
          "image_encoder": [null, null],
          "scheduler": ["diffusers", "PNDMScheduler"],
          "text_encoder": ["transformers", "CLIPTextModel"],
          "tokenizer": ["transformers", "CLIPTokenizer"],
          "unet": ["diffusers", "UNet2DConditionModel"],
          "vae": ["diffusers", "AutoencoderKL"]
        }
        """;

    static readonly string[] RepoFiles =
    [
        "model_index.json", "README.md", "v1-5-pruned.safetensors", "v1-inference.yaml",
        "feature_extractor/preprocessor_config.json",
        "safety_checker/config.json", "safety_checker/model.safetensors", "safety_checker/model.fp16.safetensors", "safety_checker/pytorch_model.bin",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/model.fp16.safetensors", "text_encoder/pytorch_model.bin",
        "tokenizer/merges.txt", "tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/vocab.json",
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
        "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.non_ema.bin",
        "vae/config.json", "vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.bin",
    ];

    static readonly string[] Common =
    [
        "model_index.json", "scheduler/scheduler_config.json", "text_encoder/config.json",
        "tokenizer/vocab.json", "tokenizer/merges.txt", "tokenizer/tokenizer_config.json", "tokenizer/special_tokens_map.json",
        "unet/config.json", "vae/config.json",
    ];

    static FakeRepo TinyRepo()
    {
        var repo = new FakeRepo { Commit = Commit };
        var i = 0;
        foreach (var f in RepoFiles)
        {
            i++;
            repo.Files[f] = f == "model_index.json" ? Encoding.UTF8.GetBytes(ModelIndex)
                : f.EndsWith(".json", StringComparison.Ordinal) || f.EndsWith(".txt", StringComparison.Ordinal) ? Encoding.UTF8.GetBytes($"{{\"file\": \"{f}\"}}")
                : Enumerable.Range(0, 3000 + i * 7).Select(k => (byte)(k * 31 + i)).ToArray();
            if (f.EndsWith(".safetensors", StringComparison.Ordinal) || f.EndsWith(".bin", StringComparison.Ordinal)) repo.Lfs.Add(f);
        }
        return repo;
    }

    static string[] Listing(string dir) =>
        Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(dir, p).Replace(Path.DirectorySeparatorChar, '/')).Order(StringComparer.Ordinal).ToArray();

    static HubClient Client(FakeHubServer server, TempDir cache, bool offline = false) => new(new HubOptions
    {
        Endpoint = server.Endpoint, CacheDir = cache.Path, Offline = offline,
        Timeout = TimeSpan.FromSeconds(10), MaxRetries = 2, RetryDelay = TimeSpan.FromMilliseconds(10),
    });

    [Fact]
    public async Task Fp16PipelineDownloadPicksTheVariantWeightsOnly()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/tiny-sd"] = TinyRepo();
        using var cache = TestPaths.NewTempDir();
        using var client = Client(server, cache);
        var progress = new ListProgress<DownloadProgress>();

        var dir = await client.DownloadPipelineAsync("org/tiny-sd", "main", WeightVariant.Fp16, progress: progress);

        Assert.Equal(Path.Combine(cache.Path, "models--org--tiny-sd", "snapshots", Commit), dir);
        string[] expected =
        [
            .. Common, "text_encoder/model.fp16.safetensors",
            "unet/diffusion_pytorch_model.fp16.safetensors", "vae/diffusion_pytorch_model.fp16.safetensors",
        ];
        Assert.Equal(expected.Order(StringComparer.Ordinal), Listing(dir));
        foreach (var f in expected)
            Assert.Equal(server.Repos["org/tiny-sd"].Files[f], File.ReadAllBytes(Path.Combine(dir, f)));
        Assert.Equal(Commit, File.ReadAllText(Path.Combine(cache.Path, "models--org--tiny-sd", "refs", "main")));
        Assert.Contains(server.Requests, r => r.Path == "/api/models/org/tiny-sd/revision/main");
        // Files are fetched at the resolved commit, like snapshot_download.
        Assert.All(server.Requests.Where(r => r.Path.Contains("/resolve/")), r => Assert.Contains($"/resolve/{Commit}/", r.Path));
        Assert.Contains(progress.Items, p => p.File == "unet/diffusion_pytorch_model.fp16.safetensors" && p.BytesDone == p.TotalBytes);

        // Offline: the same snapshot, no network.
        var before = server.Requests.Count;
        using var offline = Client(server, cache, offline: true);
        Assert.Equal(dir, await offline.DownloadPipelineAsync("org/tiny-sd", "main", WeightVariant.Fp16));
        Assert.Equal(before, server.Requests.Count);
    }

    [Fact]
    public async Task DefaultVariantPicksSafetensorsAndSafetyCheckerOnlyWhenAsked()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/tiny-sd"] = TinyRepo();
        using var cache = TestPaths.NewTempDir();
        using var client = Client(server, cache);

        var dir = await client.DownloadPipelineAsync("org/tiny-sd", includeSafetyChecker: true);

        string[] expected =
        [
            .. Common, "text_encoder/model.safetensors", "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
            "safety_checker/config.json", "safety_checker/model.safetensors", "feature_extractor/preprocessor_config.json",
        ];
        Assert.Equal(expected.Order(StringComparer.Ordinal), Listing(dir));
    }

    [Fact]
    public async Task OfflineIncompleteOrMissingSnapshotIsReported()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/tiny-sd"] = TinyRepo();
        using var cache = TestPaths.NewTempDir();
        using var offline = Client(server, cache, offline: true);
        var missing = await Assert.ThrowsAsync<HubException>(() => offline.DownloadPipelineAsync("org/tiny-sd"));
        Assert.Equal(HubErrorKind.OfflineNotCached, missing.Kind);

        using (var client = Client(server, cache))
            await client.DownloadPipelineAsync("org/tiny-sd");
        File.Delete(Path.Combine(cache.Path, "models--org--tiny-sd", "snapshots", Commit, "unet", "diffusion_pytorch_model.safetensors"));
        var partial = await Assert.ThrowsAsync<HubException>(() => offline.DownloadPipelineAsync("org/tiny-sd"));
        Assert.Equal(HubErrorKind.OfflineNotCached, partial.Kind);
        Assert.Contains("unet", partial.Message);
        Assert.Contains("incomplete", partial.Message);
    }

    [Fact]
    public void SelectionFallsBackToBinAndToNonVariantWeights()
    {
        string[] files =
        [
            "model_index.json", "scheduler/scheduler_config.json",
            "text_encoder/config.json", "text_encoder/pytorch_model.bin",
            "tokenizer/vocab.json", "tokenizer/merges.txt",
            "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
            "vae/config.json", "vae/diffusion_pytorch_model.fp16.bin", "vae/diffusion_pytorch_model.bin",
        ];
        var fp16 = PipelineFiles.Select(ModelIndex, files, WeightVariant.Fp16, includeSafetyChecker: false);
        Assert.Contains("text_encoder/pytorch_model.bin", fp16);
        Assert.Contains("unet/diffusion_pytorch_model.safetensors", fp16);
        Assert.Contains("vae/diffusion_pytorch_model.fp16.bin", fp16);
        Assert.DoesNotContain("vae/diffusion_pytorch_model.bin", fp16);
        var plain = PipelineFiles.Select(ModelIndex, files, WeightVariant.None, includeSafetyChecker: false);
        Assert.Contains("vae/diffusion_pytorch_model.bin", plain);
        Assert.DoesNotContain("vae/diffusion_pytorch_model.fp16.bin", plain);
        Assert.Equal("model_index.json", plain[0]);
    }

    [Fact]
    public void ShardedWeightsAreTakenWithTheirIndex()
    {
        const string index = """{"unet": ["diffusers", "UNet2DConditionModel"]}""";
        string[] files =
        [
            "unet/config.json",
            "unet/diffusion_pytorch_model.safetensors.index.json",
            "unet/diffusion_pytorch_model-00001-of-00002.safetensors", "unet/diffusion_pytorch_model-00002-of-00002.safetensors",
            "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
            "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors", "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors",
        ];
        Assert.Equal(
            ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors.index.fp16.json",
             "unet/diffusion_pytorch_model.fp16-00001-of-00002.safetensors", "unet/diffusion_pytorch_model.fp16-00002-of-00002.safetensors"],
            PipelineFiles.Select(index, files, WeightVariant.Fp16, false));
        Assert.Equal(
            ["model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors.index.json",
             "unet/diffusion_pytorch_model-00001-of-00002.safetensors", "unet/diffusion_pytorch_model-00002-of-00002.safetensors"],
            PipelineFiles.Select(index, files, WeightVariant.None, false));
    }

    [Fact]
    public void MissingPiecesNameTheComponent()
    {
        string[] noWeights = ["unet/config.json", "vae/config.json", "vae/diffusion_pytorch_model.bin"];
        const string index = """{"unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}""";
        var e = Assert.Throws<PipelineFilesException>(() => PipelineFiles.Select(index, noWeights, WeightVariant.None, false));
        Assert.Equal("unet", e.FileName);
        Assert.Contains("no weights", e.Message);

        var tok = Assert.Throws<PipelineFilesException>(() => PipelineFiles.Select(
            """{"tokenizer": ["transformers", "CLIPTokenizer"]}""", ["tokenizer/vocab.json"], WeightVariant.None, false));
        Assert.Contains("merges.txt", tok.Message);

        Assert.Throws<PipelineFilesException>(() => PipelineFiles.Select("not json", noWeights, WeightVariant.None, false));
        Assert.Throws<PipelineFilesException>(() => PipelineFiles.Select("""{"unet": ["diffusers", "X"], "../x": ["a", "B"]}""", noWeights, WeightVariant.None, false));
        var folder = Assert.Throws<PipelineFilesException>(() => PipelineFiles.Select(
            """{"scheduler": ["diffusers", "DDIMScheduler"]}""", noWeights, WeightVariant.None, false));
        Assert.Contains("scheduler/", folder.Message);
    }
}
