using DreamBooth.Loading;
using DreamBooth.Sampling;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Training;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;

namespace DreamBooth.Tests.Training;

/// <summary>Masked training: mask files, the weighted loss and the trainer's use of them (tiny SD 1.x fixture).</summary>
[Collection(DreamBooth.Tests.Infrastructure.CustomAutogradCollection.Name)]
public class MaskedLossTests
{
    static Concept Subject => TrainerTests.Subject;

    static void WriteMasks(DreamBoothSession s)
    {
        // the subject is the left half of each image
        foreach (var image in s.InstanceImages(Subject))
        {
            using var mask = new Image<L8>(64, 64);
            for (int y = 0; y < 64; y++) for (int x = 0; x < 32; x++) mask[x, y] = new L8(255);
            mask.SaveAsPng(MaskFiles.PathFor(image));
        }
    }

    static double[] InstanceLosses(string folder, TrainingOptions options, bool masks)
    {
        var s = TrainerTests.NewSession(folder, options);
        if (masks) WriteMasks(s);
        Assert.Equal(3, s.InstanceImages(Subject).Count); // mask files are not training images
        using var m = TrainerTests.LoadModel();
        var r = new DreamBoothTrainer(s, m).Train();
        Assert.True(r.Completed, r.StoppedReason);
        return r.History.Select(h => h.InstanceLoss).ToArray();
    }

    [Fact]
    public void AMaskReweightsTheLoss_WeightOneOrNoMaskFilesTrainExactlyAsUnmasked()
    {
        using var dir = TestPaths.NewTempDir();
        torch.set_num_threads(1);
        var o = TrainerTests.Tiny(2) with { PriorPreservation = false, TextEncoderSteps = 0 };
        var plain = InstanceLosses(Path.Combine(dir.Path, "plain"), o, masks: true);
        var weightOne = InstanceLosses(Path.Combine(dir.Path, "one"), o with { MaskedLoss = true, UnmaskedWeight = 1 }, masks: true);
        var noMasks = InstanceLosses(Path.Combine(dir.Path, "none"), o with { MaskedLoss = true }, masks: false);
        var masked = InstanceLosses(Path.Combine(dir.Path, "masked"), o with { MaskedLoss = true, UnmaskedWeight = 0.1 }, masks: true);
        for (int i = 0; i < plain.Length; i++)
        {
            Assert.Equal(plain[i], weightOne[i], 5);
            Assert.Equal(plain[i], noMasks[i]);
        }
        // same noise and timesteps at step 1, so only the weighting differs
        Assert.True(Math.Abs(masked[0] - plain[0]) > 1e-4 * plain[0], $"masked {masked[0]} vs plain {plain[0]}");
    }

    [Fact]
    public void TheWeightedLossIsTheWeightedMeanOverEachExample()
    {
        torch.set_num_threads(1);
        using var model = TrainerTests.LoadModel();
        using var schedule = new NoiseSchedule(model.Scheduler);
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        var gen = new torch.Generator(3);
        var latents = torch.randn([2, 4, 8, 8], generator: gen);
        var noise = torch.randn([2, 4, 8, 8], generator: gen);
        var t = torch.tensor(new long[] { 100, 700 });
        var context = torch.randn([2, 77, model.TextEncoder.Config.HiddenSize], generator: gen);
        // weight 1 on the left half of example 0, 0.25 on its right half; example 1 unweighted
        var w = torch.ones(2, 1, 8, 8);
        w[0, .., .., 4..] = torch.tensor(0.25f);
        var r = DreamBoothLoss.Compute(model.Unet, schedule, latents, noise, t, context, 2, 1.0, null, w);
        var sq = (r.ModelPred - r.Target).pow(2);
        double left0 = sq[0, .., .., ..4].sum().item<float>(), right0 = sq[0, .., .., 4..].sum().item<float>();
        double expected0 = (left0 + 0.25 * right0) / (4 * 8 * 4 + 0.25 * 4 * 8 * 4);
        double expected1 = sq[1].mean().item<float>();
        Assert.Equal((expected0 + expected1) / 2, r.InstanceLoss.item<float>(), 4);
        var bad = Assert.Throws<ArgumentException>(() => DreamBoothLoss.Compute(model.Unet, schedule, latents, noise, t, context, 2, 1.0, null, torch.ones(2, 1, 4, 4)));
        Assert.Contains("instance weights must be [2, 1, 8, 8]", bad.Message);
    }

    [Fact]
    public void MaskFilesAreAveragedToTheLatentGridAndAWrongSizeIsRefusedByName()
    {
        using var dir = TestPaths.NewTempDir();
        var path = Path.Combine(dir.Path, "a-masklabel.png");
        using (var mask = new Image<L8>(64, 64))
        {
            for (int y = 0; y < 64; y++) for (int x = 0; x < 16; x++) mask[x, y] = new L8(255);
            for (int y = 0; y < 64; y++) mask[17, y] = new L8(255); // one pixel column inside latent column 2 (pixels 16–23)
            mask.SaveAsPng(path);
        }
        Assert.Equal(path, MaskFiles.PathFor(Path.Combine(dir.Path, "a.jpg")));
        Assert.True(MaskFiles.IsMask(path));
        Assert.False(MaskFiles.IsMask(Path.Combine(dir.Path, "a.png")));
        using var pixels = MaskFiles.Load(path, 64, 64);
        using var latent = MaskFiles.ToLatent(pixels, 8, 8);
        Assert.Equal(new long[] { 1, 1, 8, 8 }, latent.shape);
        var v = latent.data<float>().ToArray();
        Assert.Equal(1f, v[0], 5);
        Assert.Equal(1f, v[1], 5);
        Assert.Equal(1f / 8, v[2], 5);
        Assert.Equal(0f, v[3], 5);
        using var weights = MaskFiles.Weights(latent, 0.1);
        Assert.Equal(0.1f, weights.data<float>()[7], 5);
        Assert.Equal(1f, weights.data<float>()[0], 5);
        var e = Assert.Throws<ModelLoadException>(() => MaskFiles.Load(path, 128, 128));
        Assert.Contains("a-masklabel.png", e.Message);
        Assert.Contains("64×64 but its image is 128×128", e.Message);
        File.WriteAllText(path, "not a png");
        Assert.Contains("cannot read this mask", Assert.Throws<ModelLoadException>(() => MaskFiles.Load(path, 64, 64)).Message);
    }

    [Fact]
    public void AnUnmaskedWeightOutsideZeroToOneIsRefusedByName()
    {
        var e = Assert.ThrowsAny<ArgumentException>(() => (TrainerTests.Tiny() with { UnmaskedWeight = 1.5 }).Validate());
        Assert.Contains("UnmaskedWeight", e.Message);
    }
}
