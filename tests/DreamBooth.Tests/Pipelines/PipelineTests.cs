using DreamBooth.Loading;
using DreamBooth.Pipelines;
using DreamBooth.Sampling;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Training;
using TorchSharp;

namespace DreamBooth.Tests.Pipelines;

public sealed class TinySd1Fixture : IDisposable
{
    public TinySd1Fixture() => Model = StableDiffusionModel.FromPretrained(TestPaths.ParityPath("single-file", "tiny-sd1", "diffusers"));
    public StableDiffusionModel Model { get; }
    public void Dispose() => Model.Dispose();
}

public class PipelineTests(TinySd1Fixture fixture) : IClassFixture<TinySd1Fixture>
{
    readonly StableDiffusionPipeline pipe = new(fixture.Model);

    static GenerationRequest Req(Sampler s = Sampler.EulerAncestral) => new()
    {
        Prompt = "a photo of a (red:1.2) cat",
        NegativePrompt = "blurry",
        Width = 64,
        Height = 48,
        Steps = 4,
        GuidanceScale = 5,
        Sampler = s,
        Seed = 123,
    };

    [Theory]
    [InlineData(Sampler.EulerAncestral)]
    [InlineData(Sampler.DpmPP2MKarras)]
    [InlineData(Sampler.Ddim)]
    [InlineData(Sampler.Heun)]
    [InlineData(Sampler.DpmPPSdeKarras)]
    public void GeneratesFiniteImagesOfTheRightShapeDeterministically(Sampler sampler)
    {
        using var a = pipe.Generate(Req(sampler));
        using var b = pipe.Generate(Req(sampler));
        Assert.Equal(new long[] { 1, 3, 48, 64 }, a.Images.shape);
        Assert.True(a.Images.isfinite().all().item<bool>());
        Assert.True(a.Images.abs().max().item<float>() <= 1f);
        Assert.True(TensorAssert.BitEqual(a.Images, b.Images));
        Assert.Equal(123, a.Parameters[0].Seed);
        Assert.Equal(SamplerFactory.DisplayName(sampler), a.Parameters[0].Sampler);
    }

    [Fact]
    public void GuidanceRescaleMatchesTheConditionalStdAndIsRecorded()
    {
        using var g = new torch.Generator(5);
        var cond = torch.randn([2, 4, 8, 8], generator: g) * 0.5f;
        var guided = torch.randn([2, 4, 8, 8], generator: g) * 3f + 1f;
        // φ = 1: each image's std becomes the conditional output's; φ = 0: unchanged; φ = 0.7: the linear mix
        var full = StableDiffusionPipeline.RescaleGuidance(guided, cond, 1.0);
        for (int i = 0; i < 2; i++)
            Assert.Equal(cond[i].std().item<float>(), full[i].std().item<float>(), 4);
        Assert.True(TensorAssert.BitEqual(guided, StableDiffusionPipeline.RescaleGuidance(guided, cond, 0.0)));
        var mixed = StableDiffusionPipeline.RescaleGuidance(guided, cond, 0.7);
        Assert.True((mixed - (0.7f * full + 0.3f * guided)).abs().max().item<float>() < 1e-5f);

        using var plain = pipe.Generate(Req());
        using var rescaled = pipe.Generate(Req() with { GuidanceRescale = 0.7 });
        Assert.False(TensorAssert.BitEqual(plain.Images, rescaled.Images));
        Assert.Contains(rescaled.Parameters[0].Extra, kv => kv.Key == "CFG Rescale phi" && kv.Value == "0.7");
        Assert.Throws<ArgumentException>(() => pipe.Generate(Req() with { GuidanceRescale = 1.5 }));
    }

    [Fact]
    public void BatchOfFourEqualsFourSingleRuns()
    {
        using var batch = pipe.Generate(Req() with { BatchSize = 4, Seed = 1000 });
        Assert.Equal([1000L, 1001, 1002, 1003], batch.Seeds);
        for (int i = 0; i < 4; i++)
        {
            using var single = pipe.Generate(Req() with { Seed = 1000 + i });
            var diff = (batch.Images[i..(i + 1)] - single.Images).abs().max().item<float>();
            Assert.True(TensorAssert.BitEqual(batch.Images[i..(i + 1)], single.Images), $"image {i} differs from its single run by {diff}");
        }
        // a different seed gives a different image
        Assert.False(TensorAssert.BitEqual(batch.Images[0..1], batch.Images[1..2]));
    }

    [Fact]
    public void ImageToImageKeepsTheInitImageAtLowStrength()
    {
        using var t2i = pipe.Generate(Req() with { Sampler = Sampler.Euler });
        var init = t2i.ToImages()[0];
        using var low = pipe.Generate(Req() with { Sampler = Sampler.Euler, InitImage = init, Strength = 0.25, Seed = 9, Steps = 8 });
        using var high = pipe.Generate(Req() with { Sampler = Sampler.Euler, InitImage = init, Strength = 1.0, Seed = 9, Steps = 8 });
        // what the (random) VAE makes of the init image without any denoising
        using var _ = torch.no_grad();
        var x = DreamBooth.Imaging.ImageTensor.ToTensor(init).unsqueeze(0);
        var roundTrip = fixture.Model.Vae.Decode(fixture.Model.Vae.Encode(x).Mean).clamp(-1, 1);
        double dLow = (low.Images - roundTrip).abs().mean().item<float>();
        double dHigh = (high.Images - roundTrip).abs().mean().item<float>();
        Assert.True(dLow < dHigh, $"strength 0.25 moved {dLow}, strength 1 moved {dHigh}");
        Assert.Equal(0.25, low.Parameters[0].DenoisingStrength);
    }

    [Fact]
    public void ProgressAndCancellation()
    {
        var steps = new List<int>();
        using var r = pipe.Generate(Req() with { PreviewEvery = 2 }, new InlineProgress<GenerationProgress>(p => steps.Add(p.Step)));
        Assert.Equal([1, 2, 3, 4], steps);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.Throws<OperationCanceledException>(() => pipe.Generate(Req(), null, cts.Token));
    }

    [Theory]
    [InlineData(500, 64, "width must be a multiple of 8 (got 500)")]
    [InlineData(64, 0, "height must be a multiple of 8 (got 0)")]
    public void BadSizesNameTheOption(int w, int h, string message)
    {
        var e = Assert.Throws<ArgumentException>(() => pipe.Generate(Req() with { Width = w, Height = h }));
        Assert.StartsWith(message, e.Message);
    }

    [Fact]
    public void BadStepsAndClipSkip()
    {
        Assert.Contains("steps must be between 1 and 1000 (got 0)", Assert.Throws<ArgumentException>(() => pipe.Generate(Req() with { Steps = 0 })).Message);
        Assert.Contains("clip skip must be at most 3", Assert.Throws<ArgumentException>(() => pipe.Generate(Req() with { ClipSkip = 5 })).Message);
    }
}
