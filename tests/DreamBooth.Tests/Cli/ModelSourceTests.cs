using DreamBooth.Loading;
using DreamBooth.Loading.Hub;
using DreamBooth.Loading.SingleFile;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Tests.Loading.Hub;
using TorchSharp;
using static DreamBooth.Tests.Cli.CliHarness;
using DreamBooth.Sampling;

namespace DreamBooth.Tests.Cli;

public class ModelSourceTests
{
    /// <summary>What the tiny model's files cannot tell (its norm groups and heads are not Stable Diffusion's).</summary>
    static readonly SingleFileOptions TinyOptions = new() { NormNumGroups = 4, AttentionHeadDim = [2], TextEncoderAttentionHeads = 4, ImageSize = 256 };

    static void AssertSameModel(StableDiffusionModel expected, StableDiffusionModel actual)
    {
        foreach (var (e, a, what) in new (torch.nn.Module, torch.nn.Module, string)[]
                 { (expected.Unet, actual.Unet, "unet"), (expected.Vae, actual.Vae, "vae"), (expected.TextEncoder, actual.TextEncoder, "text_encoder") })
        {
            var es = e.state_dict();
            var @as = a.state_dict();
            Assert.Equal(es.Keys.Order(StringComparer.Ordinal), @as.Keys.Order(StringComparer.Ordinal));
            foreach (var (k, t) in es)
                Assert.True(t.contiguous().bytes.SequenceEqual(@as[k].contiguous().bytes), $"{what}: {k} differs");
        }
        Assert.Equal(expected.Unet.Config.SampleSize, actual.Unet.Config.SampleSize);
        Assert.Equal(expected.Scheduler.BetaSchedule, actual.Scheduler.BetaSchedule);
        Assert.Equal(expected.Scheduler.PredictionType, actual.Scheduler.PredictionType);
        Assert.Equal(expected.Tokenizer.Encode("a photo of a cat"), actual.Tokenizer.Encode("a photo of a cat"));
    }

    [Theory]
    [InlineData("tiny-sd1.safetensors")]
    [InlineData("tiny-sd1.ckpt")]
    public void SingleFilesGiveTheSameModelAsTheDiffusersFolder(string file)
    {
        using var folder = ModelSource.Load(TinyFolder);
        using var withOptions = ModelSource.Load(Tiny(file), options: new ModelSourceOptions
        {
            SingleFile = TinyOptions,
            TokenizerFolder = Path.Combine(TinyFolder, "tokenizer"),
        });
        AssertSameModel(folder, withOptions);
        using var withConfig = ModelSource.Load(Tiny(file), options: new ModelSourceOptions { ConfigFolder = TinyFolder });
        AssertSameModel(folder, withConfig);
    }

    [Fact]
    public void PickleWeightsLoadThroughStateDicts()
    {
        // .bin/.ckpt go through the hardened pickle reader by default
        var fromPickle = StateDicts.Load(Tiny("tiny-sd1.ckpt"));
        var fromSafetensors = Safetensors.Load(Tiny("tiny-sd1.safetensors"));
        Assert.Equal(fromSafetensors.Count, fromPickle.Count);
        foreach (var (k, t) in fromSafetensors)
            Assert.True(t.contiguous().bytes.SequenceEqual(fromPickle[k].contiguous().bytes), k);
    }

    [Fact]
    public void ClassifiesFoldersFilesAndRepoIds()
    {
        Assert.Equal(ModelSourceKind.DiffusersFolder, ModelSource.Classify(TinyFolder));
        Assert.Equal(ModelSourceKind.SingleFile, ModelSource.Classify(Tiny("tiny-sd1.ckpt")));
        Assert.Equal(ModelSourceKind.HubRepo, ModelSource.Classify("runwayml/stable-diffusion-v1-5"));
        Assert.Contains("not found", Assert.Throws<ModelLoadException>(() => ModelSource.Classify("data/models/nothing-here")).Message);
        Assert.Contains("not found", Assert.Throws<ModelLoadException>(() => ModelSource.Classify("missing.safetensors")).Message);
        Assert.Contains("model_index.json", Assert.Throws<ModelLoadException>(() => ModelSource.Classify(Path.Combine(TinyFolder, "unet"))).Message);
        Assert.Throws<ModelLoadException>(() => ModelSource.Classify(""));
        var component = Path.Combine(TinyFolder, "unet", "diffusion_pytorch_model.safetensors");
        Assert.Contains("no UNet weights", Assert.Throws<ModelLoadException>(() => ModelSource.Load(component)).Message);
    }

    static FakeRepo RepoOf(string folder)
    {
        var repo = new FakeRepo { Commit = "0123456789abcdef0123456789abcdef01234567" };
        foreach (var f in Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories))
        {
            var rel = Path.GetRelativePath(folder, f).Replace(Path.DirectorySeparatorChar, '/');
            repo.Files[rel] = File.ReadAllBytes(f);
            if (rel.EndsWith(".safetensors", StringComparison.Ordinal)) repo.Lfs.Add(rel);
        }
        return repo;
    }

    [Fact]
    public async Task HubRepoIdsDownloadIntoTheCacheAndLoad()
    {
        await using var server = new FakeHubServer();
        server.Repos["org/tiny-sd1"] = RepoOf(TinyFolder);
        using var cache = TestPaths.NewTempDir();
        var hub = new HubOptions { Endpoint = server.Endpoint, CacheDir = cache.Path, Timeout = TimeSpan.FromSeconds(10), MaxRetries = 1, RetryDelay = TimeSpan.Zero };
        using (var folder = ModelSource.Load(TinyFolder))
        using (var fromHub = ModelSource.Load("org/tiny-sd1", options: new ModelSourceOptions { Hub = hub }))
            AssertSameModel(folder, fromHub);

        // the CLI command prints the snapshot folder (already cached: nothing new to fetch, same answer)
        var r = Run("download", "org/tiny-sd1", "--endpoint", server.Endpoint, "--cache-dir", cache.Path, "--token", "hf_secretsecret");
        Assert.True(r.Code == 0, r.ToString());
        var snapshot = r.Out.Trim();
        Assert.True(File.Exists(Path.Combine(snapshot, "model_index.json")), r.ToString());
        Assert.StartsWith(cache.Path, snapshot);
        Assert.DoesNotContain("hf_secretsecret", r.Out + r.Err);

        var offline = Run("download", "org/other", "--offline", "--cache-dir", cache.Path);
        Assert.Equal(1, offline.Code);
        Assert.Contains("org/other", offline.Err);
        var badVariant = Run("download", "org/tiny-sd1", "--variant", "fp8", "--cache-dir", cache.Path);
        Assert.Equal(1, badVariant.Code);
        Assert.Contains("--variant 'fp8'", badVariant.Err);
    }
}
