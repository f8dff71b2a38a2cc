using DreamBooth.Loading;
using DreamBooth.Tests.Infrastructure;
using DreamBooth.Training;
using TorchSharp;

namespace DreamBooth.Tests.Training;

public class CheckpointStoreTests
{
    static Dictionary<string, torch.Tensor> W(float v) => new() { ["unet.w"] = torch.full(3, 2, v) };

    [Fact]
    public void WritesKeepsLastKAndLoadsLatest()
    {
        using var dir = TestPaths.NewTempDir();
        foreach (var step in new[] { 10, 20, 30, 40 })
            CheckpointStore.Write(dir.Path, new CheckpointInfo { Step = step, SamplesSeen = step * 2 }, W(step), W(-step), new Dictionary<string, torch.Tensor> { ["g"] = torch.arange(4) }, keep: 2);
        Assert.Equal([30, 40], CheckpointStore.List(dir.Path).Select(c => c.Step));
        using var latest = CheckpointStore.LoadLatest(dir.Path)!;
        Assert.Equal(40, latest.Info.Step);
        Assert.Equal(80, latest.Info.SamplesSeen);
        Assert.Equal(40f, latest.Weights["unet.w"][0, 0].item<float>());
        Assert.Equal(-40f, latest.OptimizerState["unet.w"][0, 0].item<float>());
    }

    [Fact]
    public void CrashDuringSaveLeavesPreviousCheckpointLoadable()
    {
        using var dir = TestPaths.NewTempDir();
        CheckpointStore.Write(dir.Path, new CheckpointInfo { Step = 10 }, W(1), W(2), new Dictionary<string, torch.Tensor>(), keep: 3);
        // a save that dies before the rename (exception here; a killed process leaves the same temp folder behind)
        Assert.Throws<IOException>(() => CheckpointStore.Write(dir.Path, new CheckpointInfo { Step = 20 }, W(3), W(4),
            new Dictionary<string, torch.Tensor>(), keep: 3, beforeRename: _ => throw new IOException("simulated crash")));
        // a temp folder as a killed process from another PID leaves it
        var stale = Path.Combine(dir.Path, ".step-000030.999999.deadbeef.tmp");
        Directory.CreateDirectory(stale);
        File.WriteAllBytes(Path.Combine(stale, CheckpointStore.WeightsFile), [1, 2, 3]);
        using var latest = CheckpointStore.LoadLatest(dir.Path)!;
        Assert.Equal(10, latest.Info.Step);
        Assert.Equal(1f, latest.Weights["unet.w"][0, 0].item<float>());
        CheckpointStore.Prune(dir.Path, 3);
        Assert.False(Directory.Exists(stale));
    }

    [Fact]
    public void MissingStateFileIsNotACheckpoint()
    {
        using var dir = TestPaths.NewTempDir();
        Directory.CreateDirectory(Path.Combine(dir.Path, "step-000005"));
        Assert.Null(CheckpointStore.LoadLatest(dir.Path));
        var e = Assert.Throws<ModelLoadException>(() => CheckpointStore.Load(Path.Combine(dir.Path, "step-000005")));
        Assert.Contains("state.json is missing", e.Message);
    }
}
