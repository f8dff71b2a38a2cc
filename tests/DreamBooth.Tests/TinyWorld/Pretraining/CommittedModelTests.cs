using System.Text.Json;
using DreamBooth.Loading;
using DreamBooth.Pipelines;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Text;
using DreamBooth.TinyWorld;
using DreamBooth.TinyWorld.Pretraining;
using Xunit.Abstractions;

namespace DreamBooth.Tests.TinyWorld.Pretraining;

/// <summary>The committed base model data/models/tiny-sd: layout, size, loading, generation and a quick held-out evaluation.</summary>
[Collection(PretrainingCollection.Name)]
public class CommittedModelTests(ITestOutputHelper output)
{
    static string Folder => Path.Combine(TestPaths.RepoRoot, "data", "models", "tiny-sd");

    [Fact]
    public void FolderHasTheDiffusersLayoutAndFitsIn25MB()
    {
        Assert.True(Directory.Exists(Folder), $"{Folder} is missing; train it with `dreambooth tinyworld pretrain --out data/models/tiny-sd`");
        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "model_index.json")));
        Assert.Equal("StableDiffusionPipeline", index.RootElement.GetProperty("_class_name").GetString());
        foreach (var c in new[] { "unet", "vae", "text_encoder", "tokenizer", "scheduler" })
            Assert.True(index.RootElement.TryGetProperty(c, out _), $"model_index.json lacks {c}");
        long bytes = Directory.EnumerateFiles(Folder, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        Assert.True(bytes <= 25L * 1024 * 1024, $"tiny-sd is {bytes / 1048576.0:F1} MiB, over the 25 MB budget");
        foreach (var w in new[] { "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors" })
        {
            var header = Safetensors.ReadHeader(Path.Combine(Folder, w));
            Assert.All(header.Entries.Where(e => e.DType != "I64"), e => Assert.Equal("F16", e.DType));
        }
        Assert.True(File.Exists(Path.Combine(Folder, "tokenizer", "LICENSE-NOTE.md")));
        using var recipe = JsonDocument.Parse(File.ReadAllText(Path.Combine(Folder, "recipe.json")));
        Assert.True(recipe.RootElement.GetProperty("final_unet_loss").GetDouble() > 0);
    }

    [Fact]
    public void TokenizerIsClipsVocabularySoIdentifiersSplitAsInClip()
    {
        var ours = ClipTokenizer.FromFolder(Path.Combine(Folder, "tokenizer"));
        var clip = ClipTokenizer.FromFolder(TestPaths.ParityPath("tokenizer"));
        Assert.Equal(49408, ours.VocabSize);
        foreach (var text in new[] { "a photo of sks diamond", "zwx", "a small red circle in the top left on a blue background" })
            Assert.Equal(clip.Encode(text), ours.Encode(text));
    }

    [Fact]
    public void LoadsAndGeneratesFinite64PixelImages()
    {
        using var model = StableDiffusionModel.FromPretrained(Folder);
        Assert.Equal(64, model.DefaultResolution);
        var pipeline = new StableDiffusionPipeline(model);
        using var result = pipeline.Generate(new GenerationRequest { Prompt = "a large red circle in the center on a blue background", Steps = 8, Seed = 3, GuidanceScale = 5 });
        Assert.Equal(new long[] { 1, 3, 64, 64 }, result.Images.shape);
        Assert.True(result.Images.isfinite().all().item<bool>());
        var image = result.ToImages()[0];
        var m = TinyWorldMeasurements.Measure(image);
        output.WriteLine($"background {m.Background}, shape {m.Shape}, colour {m.Color}, position {m.Position}");
    }

    [Fact]
    public void QuickHeldOutEvaluationRuns()
    {
        using var model = StableDiffusionModel.FromPretrained(Folder);
        using var result = TinyModelEvaluation.Run(model, new TinyModelEvalOptions { Samples = 4, Steps = 8 });
        output.WriteLine(result.Evaluation.ToString());
        Assert.Equal(4, result.Evaluation.Images);
        Assert.Equal(4, result.Evaluation.Background.Total);
        Assert.Equal(4, result.Items.Count);
        // every held-out caption names a shape/background pair that the train split never shows
        Assert.All(result.Items, i => Assert.Contains(TinyWorldDataset.HeldOutPairs, p => SceneRequest.Parse(i.Caption) is { } r && r.Shape == p.Shape && r.Background == p.Background));
        using var grid = result.Grid();
        Assert.True(grid.Width >= 4 * 64);
    }
}
