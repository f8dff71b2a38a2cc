using System.Diagnostics;
using DreamBooth.Loading;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Training;
using TorchSharp;

namespace DreamBooth.Tests.Training;

/// <summary>
/// A `dreambooth train` process killed (SIGKILL) in the middle of a run, then resumed, ends with exactly the weights of
/// an uninterrupted run (CPU, fp32, one thread in both).
/// </summary>
[Collection(CustomAutogradCollection.Name)]
public class KillResumeTests
{
    [Fact]
    public void KilledProcessResumesToBitIdenticalWeights()
    {
        using var dir = TestPaths.NewTempDir();
        var options = TrainerTests.Tiny(24) with { CheckpointEvery = 3, KeepCheckpoints = 2, TextEncoderSteps = 5 };
        torch.set_num_threads(1);

        var a = TrainerTests.NewSession(Path.Combine(dir.Path, "a"), options);
        using var ma = TrainerTests.LoadModel();
        Assert.True(new DreamBoothTrainer(a, ma).Train().Completed);

        var b = TrainerTests.NewSession(Path.Combine(dir.Path, "b"), options);
        var cli = Path.Combine(AppContext.BaseDirectory, "DreamBooth.Cli.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in new[] { cli, "train", b.Folder, "--threads", "1", "--device", "cpu", "--quiet" }) psi.ArgumentList.Add(arg);
        psi.Environment["OMP_WAIT_POLICY"] = "PASSIVE";
        using var proc = Process.Start(psi)!;
        _ = proc.StandardOutput.ReadToEndAsync();
        _ = proc.StandardError.ReadToEndAsync();
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (CheckpointStore.List(b.CheckpointsFolder).Count == 0 && !proc.HasExited && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Thread.Sleep(30);
        bool killedMidRun = !proc.HasExited;
        if (killedMidRun) proc.Kill(entireProcessTree: true);
        proc.WaitForExit();
        Assert.True(killedMidRun, "the training process finished before it could be killed; make the run longer");
        var atKill = CheckpointStore.List(b.CheckpointsFolder);
        Assert.NotEmpty(atKill);
        Assert.True(atKill[^1].Step < options.UnetSteps);

        // resume in this process: the lock of the killed process is gone with it
        using var mb = TrainerTests.LoadModel();
        var r = new DreamBoothTrainer(DreamBoothSession.Load(b.Folder), mb).Train();
        Assert.True(r.Completed, r.StoppedReason);
        Assert.Equal(options.UnetSteps, r.Step);
        foreach (var (k, v) in ma.Unet.state_dict())
            Assert.True(TensorAssert.BitEqual(v, mb.Unet.state_dict()[k]), $"unet {k} differs after kill + resume");
        foreach (var (k, v) in ma.TextEncoder.state_dict())
            Assert.True(TensorAssert.BitEqual(v, mb.TextEncoder.state_dict()[k]), $"text encoder {k} differs after kill + resume");
    }
}
