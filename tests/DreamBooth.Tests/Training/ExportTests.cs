using DreamBooth.Loading;
using DreamBooth.Loading.SingleFile;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Training;
using TorchSharp;

namespace DreamBooth.Tests.Training;

public class ExportTests
{
    [Fact]
    public void DiffusersAndSingleFileExportsReloadToEqualTensors()
    {
        using var dir = TestPaths.NewTempDir();
        var s = TrainerTests.NewSession(Path.Combine(dir.Path, "s"), TrainerTests.Tiny(1) with { PriorPreservation = false, CheckpointEvery = 1 });
        using var m = TrainerTests.LoadModel();
        Assert.True(new DreamBoothTrainer(s, m).Train().Completed);

        var folder = ModelExport.ExportDiffusers(m, Path.Combine(dir.Path, "out-diffusers"), torch.ScalarType.Float32);
        using var back = StableDiffusionModel.FromPretrained(folder);
        foreach (var (a, b) in new (torch.nn.Module, torch.nn.Module)[] { (m.Unet, back.Unet), (m.Vae, back.Vae), (m.TextEncoder, back.TextEncoder) })
        {
            var sb = b.state_dict();
            foreach (var (k, v) in a.state_dict()) Assert.True(TensorAssert.BitEqual(v, sb[k]), k);
        }

        var file = ModelExport.ExportSingleFile(m, Path.Combine(dir.Path, "model.safetensors"), torch.ScalarType.Float32);
        var sf = SingleFileCheckpoint.Read(file, new SingleFileOptions { NormNumGroups = 4, AttentionHeadDim = [2], TextEncoderAttentionHeads = 4 });
        Assert.Equal(SdVariant.Sd1, sf.Variant);
        foreach (var (k, v) in m.Unet.state_dict()) Assert.True(TensorAssert.BitEqual(v, sf.UnetState[k]), k);
        foreach (var (k, v) in m.TextEncoder.state_dict()) Assert.True(TensorAssert.BitEqual(v, sf.TextEncoderState[k]), k);

        // a checkpoint applied to a fresh base model gives the trained weights
        using var fresh = TrainerTests.LoadModel();
        ModelExport.ApplyCheckpoint(fresh, CheckpointStore.List(s.CheckpointsFolder)[^1].Folder);
        foreach (var (k, v) in m.Unet.state_dict()) Assert.True(TensorAssert.BitEqual(v, fresh.Unet.state_dict()[k]), k);
    }

    [Fact]
    public void LoraCheckpointExportsAsKohyaAndReloads()
    {
        using var dir = TestPaths.NewTempDir();
        var s = TrainerTests.NewSession(Path.Combine(dir.Path, "s"), TrainerTests.Tiny(2) with
        {
            PriorPreservation = false, UnetLearningRate = 1e-2, Lora = new LoraOptions { Rank = 2, Alpha = 1, TrainTextEncoder = true },
        });
        using var m = TrainerTests.LoadModel();
        var trainer = new DreamBoothTrainer(s, m);
        Assert.True(trainer.Train().Completed);
        var file = ModelExport.ExportLora(Path.Combine(dir.Path, "lora.safetensors"), LoraFormat.Kohya, trainer.UnetLora!, trainer.TextEncoderLora);
        using var a = TrainerTests.LoadModel();
        var (u, t) = LoraFiles.Apply(file, a.Unet, a.TextEncoder);
        using var b = TrainerTests.LoadModel();
        var (u2, t2) = ModelExport.ApplyCheckpoint(b, CheckpointStore.List(s.CheckpointsFolder)[^1].Folder);
        using var x = torch.randn(1, 4, 8, 8);
        using var c = torch.randn(1, 77, 32);
        using var _ = torch.no_grad();
        var ya = a.Unet.Forward(x, torch.tensor(10L), c);
        var yb = b.Unet.Forward(x, torch.tensor(10L), c);
        var ym = m.Unet.Forward(x, torch.tensor(10L), c);
        Assert.True(torch.allclose(ya, ym, 1e-5, 1e-6));
        Assert.True(torch.allclose(yb, ym, 1e-5, 1e-6));
        Assert.NotNull(t);
        Assert.NotNull(t2);
    }
}
